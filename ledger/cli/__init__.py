"""The ``ledger`` command line.

Importing this package loads nothing else: the process-pool children of ``ledger ingest``
import it again as their main module, and need no command line.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from ledger.cli.app import run

# The Typer application is ``ledger.cli.app.app`` (``ledger.cli.app`` is its module).
__all__ = ["main", "run"]


def main() -> NoReturn:
    """Entry point of the ``ledger`` console script."""
    from ledger.cli.app import run

    sys.exit(run())


def __getattr__(name: str) -> Any:
    if name == "run":
        from ledger.cli.app import run

        return run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
