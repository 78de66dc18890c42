"""Declared options of processors: what a batch of each processor may carry in ``options``.

The operator declares them with the processors (``LEDGER_PROCESSOR_OPTIONS``: inline JSON,
or a JSON or TOML file) as a small JSON-schema-like map, so the API checks a batch's
options at create (422 with the reason) and the dashboard shows them, without importing
any processor code::

    {"thumbnail": {"width": {"type": "integer", "minimum": 16, "maximum": 4096,
                             "required": true, "description": "pixels"},
                   "format": {"type": "string", "enum": ["png", "webp"], "default": "png"}}}

A processor with a declaration takes only the options it declares. Each option has a
``type`` (string, integer, number, boolean, array, object) and optionally ``required``,
``default``, ``minimum``, ``maximum``, ``enum`` and ``description``. The built-in ``noop``
and ``sleep`` are declared here too (``ingest`` checks its own options).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ledger.config_files import read_json_or_toml
from ledger.errors import InvalidInput

TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}
_KEYS = {"type", "required", "default", "minimum", "maximum", "enum", "description"}


@dataclass(frozen=True)
class OptionSpec:
    type: str | list[str]  # one type name, or a list of them (any of them fits)
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    enum: list[Any] | None = None
    description: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v is not False}


Declared = dict[str, dict[str, OptionSpec]]  # processor -> option -> its spec

BUILTIN: Declared = {
    "noop": {},
    "sleep": {
        "seconds": OptionSpec("number", default=0.05, minimum=0, maximum=3600,
                              description="how long each document takes"),
        "failure_rate": OptionSpec("number", default=0.0, minimum=0, maximum=1,
                                   description="share of attempts that fail (retryable)"),
        "permanent_rate": OptionSpec("number", default=0.0, minimum=0, maximum=1,
                                     description="share of failures that are permanent"),
        "seed": OptionSpec(["integer", "string"], description="makes the failures repeatable"),
    },
}  # fmt: skip


def _types(spec: OptionSpec) -> list[str]:
    return [spec.type] if isinstance(spec.type, str) else spec.type


def _is(value: Any, type_name: str) -> bool:
    if isinstance(value, bool) and type_name != "boolean":
        return False
    return isinstance(value, TYPES[type_name])


def _option(where: str, value: Any) -> OptionSpec:
    given = value.get("type") if isinstance(value, dict) else None
    names = [given] if isinstance(given, str) else given
    if not isinstance(value, dict) or not names or not all(n in TYPES for n in names):
        raise ValueError(f"{where} needs a type: one of {', '.join(TYPES)}, or a list of them")
    unknown = set(value) - _KEYS
    if unknown:
        raise ValueError(f"{where}: unknown {', '.join(sorted(unknown))}")
    spec = OptionSpec(**value)
    for bound in ("minimum", "maximum"):
        if getattr(spec, bound) is not None and not _is(getattr(spec, bound), "number"):
            raise ValueError(f"{where}: {bound} must be a number")
    if spec.enum is not None and not isinstance(spec.enum, list):
        raise ValueError(f"{where}: enum must be a list")
    if spec.default is not None:
        try:
            _check(spec, "default", spec.default)
        except InvalidInput as exc:
            raise ValueError(f"{where}: {exc.message}") from exc
    return spec


@functools.lru_cache(maxsize=8)
def load_declared(source: str | None) -> Declared:
    """The declarations ``source`` (``LEDGER_PROCESSOR_OPTIONS``) makes, with the
    built-ins'. Raises ValueError with a message for the operator."""
    declared = dict(BUILTIN)
    if source is None or not source.strip():
        return declared
    data = read_json_or_toml(source)
    if not isinstance(data, dict):
        raise ValueError("LEDGER_PROCESSOR_OPTIONS must map processor names to their options")
    for name, options in data.items():
        if not isinstance(options, dict):
            raise ValueError(f"LEDGER_PROCESSOR_OPTIONS: {name!r} must map option names")
        declared[name] = {
            key: _option(f"LEDGER_PROCESSOR_OPTIONS: {name}.{key}", value)
            for key, value in options.items()
        }
    return declared


def declared_for(settings: object) -> Declared:
    """The declarations of ``settings`` (its ``processor_options`` field), read once."""
    return load_declared(getattr(settings, "processor_options", None))


def _check(spec: OptionSpec, key: str, value: Any) -> None:
    types = _types(spec)
    if not any(_is(value, t) for t in types):
        raise InvalidInput(f"option {key} must be of type {' or '.join(types)}")
    if spec.enum is not None and value not in spec.enum:
        raise InvalidInput(f"option {key} must be one of {', '.join(map(str, spec.enum))}")
    if spec.minimum is not None and value < spec.minimum:
        raise InvalidInput(f"option {key} must be at least {spec.minimum}")
    if spec.maximum is not None and value > spec.maximum:
        raise InvalidInput(f"option {key} must be at most {spec.maximum}")


def check_options(declared: Declared, processor: str, options: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidInput` unless ``options`` fit ``processor``'s declaration (a
    processor without one takes any options)."""
    specs = declared.get(processor)
    if specs is None:
        return
    unknown = set(options) - set(specs)
    if unknown:
        known = ", ".join(sorted(specs)) or "none"
        raise InvalidInput(
            f"unknown {processor} options: {', '.join(sorted(unknown))}; known: {known}"
        )
    for key, spec in specs.items():
        if key in options:
            _check(spec, key, options[key])
        elif spec.required:
            raise InvalidInput(f"option {key} is required by processor {processor}")
