"""The pure core: LMX events to state, the window, histograms, labels, snapshot
parsing and the Clock protocol. No sockets, threads, sleeps or prometheus_client here
(an import-linter contract in setup.cfg fails the build otherwise)."""
