"""The default data folder, apart from the settings so that naming it costs no imports."""

from __future__ import annotations

import os
from pathlib import Path


def default_home() -> Path:
    """Where the ledger keeps its SQLite file and uploaded files unless told otherwise."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "ledger"
