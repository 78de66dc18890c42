"""Command-line values that are already what their parameter wants are kept as they are.

Typer (0.29) converts every value a command receives (a batch id, a count flag's 0) with a
pydantic ``TypeAdapter``, and building the first one imports pydantic: about a third of
``ledger status BATCH --json``'s start-up, for converting a ``str`` into itself. A value
whose type is exactly the parameter's plain annotation (``str``; ``int`` without bounds),
with no parser of its own, comes out of that conversion unchanged, so it is passed through
here; a ``Path`` is built and checked by Typer's own path function, as its adapter would;
anything else (a choice, a bounded number, a text to parse) still goes to Typer's own
conversion, built on first use as before.

Typer's conversion is reached through its parameter class, whose method is replaced here
(as ``help_format`` does for the help); with a Typer that lacks it nothing is replaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer import core

try:  # Typer's own conversion pieces (0.29); a Typer without them converts as it always did
    from typer import _coercion, _param_types
except ImportError:  # pragma: no cover
    _coercion = _param_types = None  # type: ignore[assignment]

PLAIN_TYPES = (str, int)


class _PassThroughFirst:
    """The conversion of one parameter: no value and a plain value kept as they are (by
    Typer's own pass-through), anything else by Typer's full conversion."""

    def __init__(self, descriptor: Any) -> None:
        self._descriptor = descriptor
        self._plain = _plain(descriptor)
        self._path = _plain_path(descriptor)
        self._as_is = _coercion.PassThroughRuntimeParam(
            parameter_info=descriptor.parameter_info, annotation=descriptor.annotation
        )
        self._typer: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        single = not (param.multiple or param.nargs == -1)
        if value is None or (self._plain and single and type(value) is self._descriptor.annotation):
            return self._as_is.coerce(value, param=param, ctx=ctx)
        if self._path and single and isinstance(value, str):
            # Typer's own checks (exists, readable, ...) on the Path it would have built.
            info = self._descriptor.parameter_info
            return _param_types.coerce_cli_path(
                Path(value), info, path_type=Path, param=param, ctx=ctx
            )
        if self._typer is None:
            self._typer = _coercion.build_runtime_param(self._descriptor)
        return self._typer.coerce(value, param=param, ctx=ctx)


def _plain(descriptor: Any) -> bool:
    info = descriptor.parameter_info
    return (
        descriptor.annotation in PLAIN_TYPES
        and descriptor.file_annotation is None
        and getattr(info, "parser", None) is None
        and getattr(info, "min", None) is None
        and getattr(info, "max", None) is None
    )


def _plain_path(descriptor: Any) -> bool:
    info = descriptor.parameter_info
    return (
        descriptor.annotation is Path
        and getattr(info, "path_type", None) is None
        and getattr(info, "parser", None) is None
        and not getattr(info, "allow_dash", True)
    )


def pass_plain_values_through() -> None:
    """Make every Typer parameter keep no value, and a value already of its plain type,
    without building Typer's conversion (which imports pydantic)."""
    parameter = getattr(core, "_TyperParameter", None)
    typer_runtime_param = getattr(parameter, "get_runtime_param", None)
    if parameter is None or typer_runtime_param is None or _coercion is None:
        return

    def get_runtime_param(self: Any) -> Any:
        descriptor = getattr(self, "type_descriptor", None)
        if getattr(self, "_runtime_param", None) is None and descriptor is not None:
            self._runtime_param = _PassThroughFirst(descriptor)
        return typer_runtime_param(self)

    parameter.get_runtime_param = get_runtime_param
