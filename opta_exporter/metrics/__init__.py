"""The exporter's own families: their specs (the metric list), the tables a scrape
builds from a copy of the state, the collector and the fast text writer."""
