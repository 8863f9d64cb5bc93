"""LMX's own /admin/metrics: read in the background, repaired, re-exposed under
LMX's names."""
