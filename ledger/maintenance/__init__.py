"""Maintenance: rescue, upload cleanup, retention and SQLite upkeep, one process at a time."""
