"""Supply-chain release orchestrator: one typed spec drives the local release and generated CI."""

__version__ = "0.2.0"
