"""Prometheus exporter for Opta LMX: its event stream, snapshots and own metrics."""

__version__ = "0.1.0"
