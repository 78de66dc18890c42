"""The HTTP API (Litestar): a thin face over the ledger core."""
