"""What an API caller may ask for: the one check that REST, tus and the dashboard share.

Callers never choose code, URLs or secrets. A batch names a processor the operator allows
(built-ins, ``LEDGER_PROCESSORS``, installed entry points), an embedder profile and sink
profiles the operator defined (``LEDGER_EMBEDDERS``, ``LEDGER_SINKS``); options carrying
a URL, a key or the name of a secret's variable are refused, wherever they are nested.
Everything here runs before anything is written, and imports no code a caller names.
Refusals are :class:`NotAllowed` (HTTP 422).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ledger.embedders.base import EmbedderSpec
from ledger.embedders.profiles import profiles_for
from ledger.errors import InvalidInput, NotAllowed
from ledger.processors.builtin import check_builtin_options
from ledger.processors.option_schemas import check_options, declared_for
from ledger.processors.registry import ProcessorRegistry
from ledger.settings import Settings
from ledger.sinks.profiles import profiles_for as sink_profiles_for

# Option names that carry (or point at) key material or an outbound address.
_SECRET_WORDS = re.compile(
    r"api_?key|secret|passw(or)?d|credential|authori[sz]ation|bearer|private_?key|"
    r"access_?key|cookie|^auth$|^key$|^token$|_token$|^url$|_url$|^endpoint$|_env$|^headers$"
)

_registries: dict[int, tuple[Settings, ProcessorRegistry]] = {}


def registry_for(settings: Settings) -> ProcessorRegistry:
    """The processor registry of ``settings``, built once per settings object."""
    held = _registries.get(id(settings))
    if held is None or held[0] is not settings:
        held = _registries[id(settings)] = (settings, ProcessorRegistry.from_settings(settings))
    return held[1]


def secret_like(key: str) -> bool:
    """Whether an option or metadata name looks like key material or an address."""
    return bool(_SECRET_WORDS.search(key.lower().replace("-", "_")))


def _nested_keys(value: Any) -> Iterable[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                yield str(key)
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)


def _check_embedder(options: Mapping[str, Any], profiles: Mapping[str, Any]) -> None:
    embedder = options.get("embedder")
    if embedder is None:
        return
    if not isinstance(embedder, str):
        raise NotAllowed(
            'option embedder must name an embedder profile (for example "local"); inline '
            "embedder settings are not accepted from API callers: the operator defines "
            "profiles with LEDGER_EMBEDDERS"
        )
    if embedder not in profiles:
        raise NotAllowed(
            f"unknown embedder profile {embedder!r}; known: {', '.join(sorted(profiles))}"
        )


def check_batch(settings: Settings, processor: str, options: Mapping[str, Any]) -> None:
    """Raise :class:`NotAllowed` unless an API caller may create a batch of ``processor``
    with ``options`` (which must fit its declared options and, for a built-in, its own check)."""
    registry_for(settings).check(processor)
    for key in _nested_keys(options):
        if secret_like(key):
            raise NotAllowed(
                f"option {key!r} is not accepted from API callers: URLs and keys are set by "
                "the operator (name an embedder profile instead)"
            )
    profiles = profiles_for(settings)
    _check_embedder(options, profiles)
    if options.get("sinks") and processor != "ingest":
        raise NotAllowed("option sinks is for the ingest processor (it mirrors its chunks)")
    try:
        check_options(declared_for(settings), processor, options)
        check_builtin_options(processor, dict(options), profiles, sink_profiles_for(settings))
    except InvalidInput as exc:
        raise NotAllowed(exc.message) from exc


def check_upload_metadata(settings: Settings, processor: str | None, keys: Iterable[str]) -> None:
    """Raise :class:`NotAllowed` unless tus ``Upload-Metadata`` with ``keys`` naming
    ``processor`` (None: the default) is acceptable from an API caller."""
    for key in keys:
        if secret_like(key) or key in ("embedder", "options", "sinks"):
            raise NotAllowed(
                f"Upload-Metadata {key!r} is not accepted: URLs, keys and embedder settings "
                "are set by the operator (create the batch first, with POST /batches naming "
                "its embedder and sink profiles, then upload into it)"
            )
    if processor is not None:
        registry_for(settings).check(processor)


def check_query(keys: Iterable[str]) -> None:
    """Raise :class:`NotAllowed` if a request's query names a URL or key material (which
    no route takes: refused rather than ignored, so a caller learns it has no effect)."""
    for key in keys:
        if secret_like(key) or key == "embedder_options":
            raise NotAllowed(
                f"query parameter {key!r} is not accepted: URLs and keys are set by the "
                "operator (name an embedder profile with embedder=)"
            )


def search_embedder(settings: Settings, name: str | None) -> EmbedderSpec | None:
    """The profile an API search names (None when it names none). Raises
    :class:`NotAllowed` for an unknown name."""
    if name is None:
        return None
    profiles = profiles_for(settings)
    if name not in profiles:
        raise NotAllowed(f"unknown embedder profile {name!r}; known: {', '.join(sorted(profiles))}")
    spec = profiles[name]
    if spec is None:
        raise NotAllowed(f"embedder profile {name!r} embeds nothing: search with mode=text")
    return spec
