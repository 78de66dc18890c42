"""The ledger's tables by domain. ``ledger.db.models`` assembles them into one metadata."""
