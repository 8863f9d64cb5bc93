"""The interval reads of LMX's admin API that correct the event-built state."""
