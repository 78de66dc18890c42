"""How ``--help`` shows arguments: by their metavar (PATH, BATCH, QUERY), without a type."""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument


def hide_argument_types() -> None:
    """Show ``PATH`` rather than ``PATH <list[Path]>`` in the arguments of every command.

    Typer prints the Python annotation beside each argument; for people it is noise, and
    the metavar with the help line already says what to type.
    """

    def no_type(self: TyperArgument, ctx: Any) -> str | None:
        return None

    TyperArgument.display_type_rich = no_type  # type: ignore[method-assign,assignment]
