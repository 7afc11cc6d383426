"""flashlab: the CLI and the run orchestration that wire system, simulator, chaos and analysis together."""

__version__ = "0.1.0"
