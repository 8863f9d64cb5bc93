"""A stand-in for Opta LMX on loopback, for the demo and the tests; not part of the
exporter's wheel (setup.cfg ships `opta_exporter` only)."""

from lmx_simulator.simulator import LmxSimulator

__all__ = ["LmxSimulator"]
