"""Sink profiles: the operator names each vector store a batch may mirror its chunks into.

A sink writes to a folder or a server with a key; were those batch options, any API caller
could make the server write where it likes. So, like embedders, the operator defines them
once in ``LEDGER_SINKS`` (a JSON or TOML file, or inline JSON)::

    [docs-lance]
    kind = "lancedb"
    uri = "/srv/vectors/lance"        # a folder (LanceDB is embedded)
    table = "chunks"

    [docs-qdrant]
    kind = "qdrant"
    url = "https://qdrant.internal:6333"   # or path = "/srv/qdrant" (local mode)
    collection = "chunks"
    api_key_env = "QDRANT_API_KEY"         # or api_key_file = "/run/secrets/qdrant"

and callers give names: ``{"sinks": ["docs-lance"]}``. Any other ``kind`` is a
``ledger.sinks`` entry point, given the profile's settings as they are. Every kind takes
``write_size``: the most points sent in one write (``ledger/sinks/pacing.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ledger.operator_profiles import NAME, key_source, profile_table, read_profiles
from ledger.sinks.base import SinkProfile

VARIABLE = "LEDGER_SINKS"
_KEY_SOURCES = ("api_key_env", "api_key_file")
_BUILTIN_KEYS = {
    "lancedb": {"kind", "uri", "table", "write_size"},
    "qdrant": {"kind", "url", "path", "location", "collection", "write_size", *_KEY_SOURCES},
}
MAX_WRITE_SIZE = 100_000

Profiles = Mapping[str, SinkProfile]


class SinkProfileError(ValueError):
    """``LEDGER_SINKS`` cannot be read or does not describe valid profiles."""


def _text(name: str, value: Mapping[str, Any], key: str, *, required: bool) -> str | None:
    found = value.get(key)
    if found is None and not required:
        return None
    if not isinstance(found, str) or not found.strip():
        raise SinkProfileError(f"LEDGER_SINKS: profile {name!r} needs {key} (a non-empty string)")
    return found.strip()


def _builtin(name: str, kind: str, value: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(value) - _BUILTIN_KEYS[kind]
    if unknown:
        raise SinkProfileError(
            f"LEDGER_SINKS: profile {name!r}: unknown settings {', '.join(sorted(unknown))}; "
            f"a {kind} sink takes {', '.join(sorted(_BUILTIN_KEYS[kind] - {'kind'}))}"
        )
    paced = {"write_size": value["write_size"]} if "write_size" in value else {}
    if kind == "lancedb":
        uri = _text(name, value, "uri", required=True)
        assert uri is not None
        table = _text(name, value, "table", required=False) or "chunks"
        return {"uri": str(Path(uri).expanduser()), "table": table, **paced}
    places = [k for k in ("url", "path", "location") if value.get(k) is not None]
    if len(places) != 1:
        raise SinkProfileError(
            f"LEDGER_SINKS: profile {name!r} needs exactly one of url, path (local mode) or "
            'location = ":memory:"'
        )
    settings: dict[str, Any] = {
        "collection": _text(name, value, "collection", required=False) or "chunks",
        **paced,
    }
    place = places[0]
    given = _text(name, value, place, required=True)
    assert given is not None
    if place == "location" and given != ":memory:":
        raise SinkProfileError(f'LEDGER_SINKS: profile {name!r}: location can only be ":memory:"')
    settings[place] = str(Path(given).expanduser()) if place == "path" else given
    source = key_source(
        VARIABLE, name, value, SinkProfileError, allowed=_KEY_SOURCES, required=False
    )
    if source is not None:
        if place != "url":
            raise SinkProfileError(f"{VARIABLE}: profile {name!r}: a key only with a url")
        settings[source[0]] = source[1]
    return settings


def _installed(name: str, kind: str) -> None:
    """A built-in kind's client library is there (looked up, not imported), or the start
    stops with the one line naming the extra to install."""
    from ledger.extras import MissingExtra, require

    modules = ("lancedb", "pyarrow") if kind == "lancedb" else ("qdrant_client",)
    try:
        require(kind, *modules, what=f"LEDGER_SINKS profile {name!r} (kind {kind})")
    except MissingExtra as exc:
        raise SinkProfileError(exc.message) from exc


def _profile(name: str, value: Any) -> SinkProfile:
    value = profile_table(VARIABLE, name, value, SinkProfileError)
    kind = value.get("kind")
    if not isinstance(kind, str) or not NAME.fullmatch(kind):
        raise SinkProfileError(
            f"LEDGER_SINKS: profile {name!r} needs a kind: lancedb, qdrant, or the name of "
            "an installed 'ledger.sinks' entry point"
        )
    size = value.get("write_size", 1)
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_WRITE_SIZE:
        raise SinkProfileError(
            f"LEDGER_SINKS: profile {name!r}: write_size is the most points in one write, "
            f"a whole number from 1 to {MAX_WRITE_SIZE:,}"
        )
    if kind in _BUILTIN_KEYS:
        _installed(name, kind)
        return SinkProfile(name=name, kind=kind, settings=_builtin(name, kind, value))
    requires = value.get("requires_vectors", True)
    if not isinstance(requires, bool):
        raise SinkProfileError(f"LEDGER_SINKS: profile {name!r}: requires_vectors is true or false")
    settings = {k: v for k, v in value.items() if k not in ("kind", "requires_vectors")}
    return SinkProfile(name=name, kind=kind, settings=settings, requires_vectors=requires)


@functools.lru_cache(maxsize=8)
def load_profiles(source: str | None) -> Profiles:
    """The profiles ``source`` (the value of ``LEDGER_SINKS``) defines; none by default.
    Raises :class:`SinkProfileError` with a message for the operator."""
    if source is None or not source.strip():
        return {}
    data = read_profiles(source, VARIABLE, SinkProfileError)
    return {name: _profile(name, value) for name, value in data.items()}


def profiles_for(settings: object) -> Profiles:
    """The sink profiles of ``settings`` (its ``sinks`` field), read once per value."""
    return load_profiles(getattr(settings, "sinks", None))


def chosen_sinks(value: Any, profiles: Profiles | None, *, has_embedder: bool) -> tuple[str, ...]:
    """The sink names a batch's ``sinks`` option picks, checked: a list of profile names
    (``profiles`` None: the names are not checked here), each sink that needs vectors only
    with an embedder. Raises ``InvalidInput`` with the reason."""
    from ledger.errors import InvalidInput

    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidInput(
            'option sinks must be a list of sink profile names (for example ["docs"]); the '
            "operator defines them with LEDGER_SINKS"
        )
    names = tuple(dict.fromkeys(value))
    if profiles is None:
        return names
    for name in names:
        profile = profiles.get(name)
        if profile is None:
            known = ", ".join(sorted(profiles)) or "none (LEDGER_SINKS is not set)"
            raise InvalidInput(f"unknown sink profile {name!r}; known: {known}")
        if profile.requires_vectors and not has_embedder:
            raise InvalidInput(
                f"sink {name!r} stores vectors: the batch needs an embedder (option embedder)"
            )
    return names
