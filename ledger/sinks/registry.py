"""From a profile to a sink object: the built-in kinds, then ``ledger.sinks`` entry points.

The operator enables another store by installing a package that declares, in its
``pyproject.toml``::

    [project.entry-points."ledger.sinks"]
    mystore = "mypackage.sink:build"

and naming ``kind = "mystore"`` in a ``LEDGER_SINKS`` profile. ``build(profile)`` returns an
object with the :class:`ledger.sinks.base.Sink` methods.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

from ledger.sinks.base import Sink, SinkError, SinkProfile

ENTRY_POINT_GROUP = "ledger.sinks"

Factory = Callable[[SinkProfile], Sink]


def _builtin(kind: str) -> Factory | None:
    if kind == "lancedb":
        from ledger.sinks import lance

        return lance.build
    if kind == "qdrant":
        from ledger.sinks import qdrant

        return qdrant.build
    return None


def factory_for(kind: str) -> Factory:
    """The factory of a profile kind. Raises a permanent :class:`SinkError` for a kind no
    installed package provides."""
    found = _builtin(kind)
    if found is not None:
        return found
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == kind:
            loaded = entry.load()
            if not callable(loaded):
                raise SinkError(f"entry point {kind!r} of {ENTRY_POINT_GROUP} is not callable")
            return loaded  # type: ignore[no-any-return]
    raise SinkError(
        f"no sink kind {kind!r}: install the package that provides the {ENTRY_POINT_GROUP} "
        "entry point of that name",
        permanent=True,
    )


def build_sink(profile: SinkProfile) -> Sink:
    """A new sink object for the profile. A missing extra is a permanent :class:`SinkError`
    naming the install command."""
    from ledger.extras import MissingExtra

    try:
        return factory_for(profile.kind)(profile)
    except MissingExtra as exc:
        raise SinkError(exc.message, permanent=True) from exc
