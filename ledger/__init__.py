"""ledger: a job ledger for batch document processing with checkpoint and resume."""

__version__ = "0.1.0"
