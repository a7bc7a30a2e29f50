"""qflow_lab: the reference Qflow node and the local lab that runs it (see lab/README.md)."""

__version__ = "0.1.0"
