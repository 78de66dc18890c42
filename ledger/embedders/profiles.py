"""Embedder profiles: the operator names each embedder a batch or a search may use.

An embedder sends document text to a URL with a key. Were the URL and the key's source
batch options, any API caller could make the server post text, and a server secret as a
``Bearer`` token, to an address of the caller's choice (and read internal services' answers
back through ``/failures``). So the operator defines them once, in ``LEDGER_EMBEDDERS``: a
JSON or TOML file (or inline JSON) mapping a profile name to its settings::

    [openai-small]
    kind = "openai"
    base_url = "https://api.openai.com/v1"
    model = "text-embedding-3-small"
    api_key_env = "OPENAI_API_KEY"       # or api_key_file = "/run/secrets/openai", or auth = "none"

and callers give the name: ``{"embedder": "openai-small"}``. ``local`` (the bundled model)
and ``none`` are built in; an operator profile of the same name replaces them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

from ledger.embedders.base import LOCAL_PROFILE, EmbedderSpec
from ledger.operator_profiles import KEY_SOURCES, key_source, profile_table, read_profiles

VARIABLE = "LEDGER_EMBEDDERS"

Profiles = Mapping[str, EmbedderSpec | None]
BUILTIN: dict[str, EmbedderSpec | None] = {"local": LOCAL_PROFILE, "none": None}


class ProfileError(ValueError):
    """``LEDGER_EMBEDDERS`` cannot be read or does not describe valid profiles."""


def _profile(name: str, value: Any) -> EmbedderSpec | None:
    value = profile_table(VARIABLE, name, value, ProfileError)
    settings = {k: v for k, v in value.items() if k not in ("api_key_file", "auth")}
    source = None
    if value.get("kind") == "openai":
        source = key_source(VARIABLE, name, value, ProfileError, allowed=KEY_SOURCES, required=True)
    elif value.get("api_key_file") is not None or value.get("auth") not in (None, "none"):
        raise ProfileError(f"{VARIABLE}: profile {name!r}: only kind openai takes a key")
    from ledger.errors import InvalidInput

    try:
        spec = EmbedderSpec.from_options(settings)
    except InvalidInput as exc:
        raise ProfileError(f"{VARIABLE}: profile {name!r}: {exc.message}") from exc
    if spec is not None and source is not None and source[0] == "api_key_file":
        spec = dataclasses.replace(spec, api_key_file=source[1])
    return spec


@functools.lru_cache(maxsize=8)
def load_profiles(source: str | None) -> Profiles:
    """The profiles ``source`` (the value of ``LEDGER_EMBEDDERS``) defines, with the
    built-ins. Raises :class:`ProfileError` with a message for the operator."""
    profiles: dict[str, EmbedderSpec | None] = dict(BUILTIN)
    if source is None or not source.strip():
        return profiles
    for name, value in read_profiles(source, VARIABLE, ProfileError).items():
        profiles[name] = _profile(name, value)
    return profiles


def profiles_for(settings: object) -> Profiles:
    """The profiles of ``settings`` (its ``embedders`` field), read once per value."""
    return load_profiles(getattr(settings, "embedders", None))
