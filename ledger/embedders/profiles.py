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
import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ledger.config_files import read_json_or_toml
from ledger.embedders.base import LOCAL_PROFILE, EmbedderSpec

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_KEY_SOURCES = ("api_key_env", "api_key_file", "auth")

Profiles = Mapping[str, EmbedderSpec | None]
BUILTIN: dict[str, EmbedderSpec | None] = {"local": LOCAL_PROFILE, "none": None}


class ProfileError(ValueError):
    """``LEDGER_EMBEDDERS`` cannot be read or does not describe valid profiles."""


def _read(source: str) -> Any:
    try:
        return read_json_or_toml(source)
    except OSError as exc:
        path = Path(source.strip()).expanduser()
        raise ProfileError(f"LEDGER_EMBEDDERS: cannot read {path}: {exc.strerror}") from exc


def _profile(name: str, value: Any) -> EmbedderSpec | None:
    if not _NAME.fullmatch(name):
        raise ProfileError(f"LEDGER_EMBEDDERS: profile name {name!r} is not a plain name")
    if not isinstance(value, dict):
        raise ProfileError(f"LEDGER_EMBEDDERS: profile {name!r} must be a table of settings")
    settings = {k: v for k, v in value.items() if k not in ("api_key_file", "auth")}
    key_file = value.get("api_key_file")
    auth = value.get("auth")
    if value.get("kind") == "openai":
        given = [k for k in _KEY_SOURCES if value.get(k) is not None]
        if len(given) != 1 or (auth is not None and auth != "none"):
            raise ProfileError(
                f"LEDGER_EMBEDDERS: profile {name!r} needs exactly one key source: "
                'api_key_env, api_key_file or auth = "none"'
            )
        if key_file is not None and (not isinstance(key_file, str) or not key_file):
            raise ProfileError(f"LEDGER_EMBEDDERS: profile {name!r}: api_key_file is a path")
    elif key_file is not None or auth not in (None, "none"):
        raise ProfileError(f"LEDGER_EMBEDDERS: profile {name!r}: only kind openai takes a key")
    from ledger.errors import InvalidInput

    try:
        spec = EmbedderSpec.from_options(settings)
    except InvalidInput as exc:
        raise ProfileError(f"LEDGER_EMBEDDERS: profile {name!r}: {exc.message}") from exc
    if spec is not None and key_file is not None:
        spec = dataclasses.replace(spec, api_key_file=str(Path(key_file).expanduser()))
    return spec


@functools.lru_cache(maxsize=8)
def load_profiles(source: str | None) -> Profiles:
    """The profiles ``source`` (the value of ``LEDGER_EMBEDDERS``) defines, with the
    built-ins. Raises :class:`ProfileError` with a message for the operator."""
    profiles: dict[str, EmbedderSpec | None] = dict(BUILTIN)
    if source is None or not source.strip():
        return profiles
    try:
        data = _read(source)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"LEDGER_EMBEDDERS is not valid JSON or TOML: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError("LEDGER_EMBEDDERS must map profile names to their settings")
    for name, value in data.items():
        profiles[name] = _profile(name, value)
    return profiles


def profiles_for(settings: object) -> Profiles:
    """The profiles of ``settings`` (its ``embedders`` field), read once per value."""
    return load_profiles(getattr(settings, "embedders", None))
