"""Which processors exist, which of them an API caller may name, and building them.

A processor name is code the worker will run, so who may choose it matters:

- the built-ins (``noop``, ``sleep``, ``ingest``) and installed ``ledger.processors`` entry
  points are always available;
- the operator adds more with ``LEDGER_PROCESSORS``: an entry point name, ``module:function``,
  or ``alias=module:function`` (callers then name the alias);
- an API caller (REST, tus, dashboard) may name only those: :meth:`ProcessorRegistry.check`
  answers from the names alone and never imports anything, because importing a module runs
  its top-level code;
- the operator's own CLI may still name any ``module:function`` (:meth:`validate` imports it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

from ledger.errors import InvalidInput, NotAllowed
from ledger.model import JSON
from ledger.processors.base import (
    ENTRY_POINT_GROUP,
    Factory,
    Processor,
    ProcessorContext,
    from_object,
    load_object,
)


class ProcessorNotAllowed(NotAllowed):
    """This processor is not one the operator allows API callers to use."""


class ProcessorRegistry:
    """Resolves processor names: built-ins, operator aliases, ``module:function`` and entry
    points; knows which names API callers may use."""

    def __init__(
        self, builtins: dict[str, Factory] | None = None, allowed: Iterable[str] = ()
    ) -> None:
        if builtins is None:
            from ledger.processors.builtin import BUILTINS

            builtins = dict(BUILTINS)
        self._factories = builtins
        self._aliases: dict[str, str] = {}
        self._allowed: set[str] = set()
        for entry in allowed:
            alias, eq, target = entry.partition("=")
            if eq:
                self._aliases[alias] = target
            else:
                self._allowed.add(alias)
        self._cache: dict[tuple[str, str], Processor] = {}
        self._installed: dict[str, EntryPoint] | None = None
        self._last: tuple[str, JSON, ProcessorContext, Processor] | None = None

    @classmethod
    def from_settings(cls, settings: object) -> ProcessorRegistry:
        """The registry with the operator's ``LEDGER_PROCESSORS`` allowlist."""
        return cls(allowed=getattr(settings, "processors", None) or ())

    def _entry_points(self) -> dict[str, EntryPoint]:
        """The installed ``ledger.processors`` entry points by name, none of them loaded.

        Read once per registry: scanning every installed package's metadata takes 10-20 ms
        in a large environment, and the API asked on every request that names a processor.
        A package installed later is seen by a new registry (a restart), which is also when
        its code can be imported into the worker."""
        if self._installed is None:
            found: dict[str, EntryPoint] = {}
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                found.setdefault(ep.name, ep)  # two packages with one name: the first wins
            self._installed = found
        return self._installed

    def names(self) -> list[str]:
        """Every name an API caller may give."""
        return sorted(
            set(self._factories) | set(self._aliases) | self._allowed | set(self._entry_points())
        )

    def allows(self, name: str) -> bool:
        """Whether an API caller may name ``name``. Imports nothing."""
        return (
            name in self._factories
            or name in self._aliases
            or name in self._allowed
            or name in self._entry_points()
        )

    def check(self, name: str) -> None:
        """Raise :class:`ProcessorNotAllowed` unless an API caller may name ``name``."""
        if not self.allows(name):
            raise ProcessorNotAllowed(
                f"processor {name!r} is not allowed; choose one of: {', '.join(self.names())} "
                "(the operator allows more with LEDGER_PROCESSORS)"
            )

    def can_run(self, name: str) -> bool:
        """Whether this registry can resolve ``name`` (for a worker); imports nothing."""
        return self.allows(name) or (":" in name and not name.startswith(":"))

    def runnable(self, extra: Iterable[str] = ()) -> tuple[list[str], dict[str, str]]:
        """What a worker can run, checked now: the built-ins, the operator's allowlist, the
        installed entry points and ``extra`` names (the processor a CLI run names, say).

        Every name but a built-in is imported and must give a callable; the worker declares
        the names that pass (it claims only their batches). Returns those names and, for
        each one that failed, why: a worker still starts without it.
        """
        names = set(self._factories)
        failed: dict[str, str] = {}
        wanted = dict(self._aliases)
        wanted.update((name, name) for name in self._allowed)
        wanted.update((name, name) for name in self._entry_points())
        for name in extra:
            if name not in names:
                wanted.setdefault(name, self._aliases.get(name, name))
        for name, target in sorted(wanted.items()):
            if target in self._factories:
                names.add(name)
                continue
            try:
                self._load(target)
            except Exception as exc:  # importing runs the module's code: anything may fail
                failed[name] = exc.message if isinstance(exc, InvalidInput) else repr(exc)
            else:
                names.add(name)
        return sorted(names), failed

    def _load(self, target: str) -> object:
        if ":" in target:
            return load_object(target)
        ep = self._entry_points().get(target)
        if ep is None:
            raise InvalidInput(f"unknown processor {target!r}")
        obj = ep.load()
        if not callable(obj):
            raise InvalidInput(f"processor {target!r} is not callable")
        return obj

    def validate(self, name: str) -> None:
        """For the operator (CLI): raise :class:`InvalidInput` now if ``name`` can never be
        resolved. Imports a ``module:function`` to find out."""
        target = self._aliases.get(name, name)
        if target in self._factories or (":" in target and load_object(target)):
            return
        if target not in self._entry_points():
            raise InvalidInput(
                f"unknown processor {name!r}; known: {', '.join(self.names())}, or module:function"
            )

    def get(self, context: ProcessorContext, name: str, options: JSON) -> Processor:
        """The processor for a batch (built once per name and options, then reused)."""
        # The documents of one claim share one options object: skip encoding it per document.
        last = self._last
        if last is not None and last[1] is options and last[0] == name and last[2] is context:
            return last[3]
        key = (name, json.dumps(options, sort_keys=True, default=str))
        processor = self._cache.get(key)
        if processor is None:
            processor = self._build(context, name, options)
            self._cache[key] = processor
        self._last = (name, options, context, processor)
        return processor

    def _build(self, context: ProcessorContext, name: str, options: JSON) -> Processor:
        factory = self._factories.get(name)
        if factory is not None:
            return factory(context, options)
        target = self._aliases.get(name, name)
        if ":" in target:
            return from_object(context, load_object(target), options)
        ep = self._entry_points().get(target)
        if ep is None:
            raise InvalidInput(f"unknown processor {name!r}")
        return from_object(context, ep.load(), options)
