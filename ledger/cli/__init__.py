"""The ``ledger`` command line."""

from __future__ import annotations

import sys
from typing import NoReturn

from ledger.cli.app import app, run

__all__ = ["app", "main", "run"]


def main() -> NoReturn:
    """Entry point of the ``ledger`` console script."""
    sys.exit(run())
