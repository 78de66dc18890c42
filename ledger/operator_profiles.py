"""What every operator profile variable shares (``LEDGER_EMBEDDERS``, ``LEDGER_SINKS``).

A profile names something that talks to the world with a secret (an embedding service, a
vector store). Callers only give its name, so the checks that keep a caller from choosing a
URL or a secret are the operator's file's, and they are the same for every kind of profile:
the file is JSON or TOML (or inline JSON) mapping plain names to tables of settings, and a
profile's secret comes from exactly one place, an environment variable (``api_key_env``) or
a file (``api_key_file``), or, where the kind allows it, nowhere (``auth = "none"``).

Each check raises the caller's error class with a message for the operator that starts with
the variable's name.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ledger.config_files import read_json_or_toml

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
KEY_SOURCES = ("api_key_env", "api_key_file", "auth")


def read_profiles(source: str, variable: str, error: type[ValueError]) -> dict[str, Any]:
    """The profile tables ``source`` (the variable's value: a path, or inline JSON) maps
    names to; not yet checked one by one."""
    try:
        data = read_json_or_toml(source)
    except OSError as exc:
        path = Path(source.strip()).expanduser()
        raise error(f"{variable}: cannot read {path}: {exc.strerror}") from exc
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise error(f"{variable} is not valid JSON or TOML: {exc}") from exc
    if not isinstance(data, dict):
        raise error(f"{variable} must map profile names to their settings")
    return data


def profile_table(variable: str, name: str, value: Any, error: type[ValueError]) -> dict[str, Any]:
    """``value`` as the settings of the profile ``name``: a plain name, a table."""
    if not NAME.fullmatch(name):
        raise error(f"{variable}: profile name {name!r} is not a plain name")
    if not isinstance(value, dict):
        raise error(f"{variable}: profile {name!r} must be a table of settings")
    return value


def key_source(
    variable: str,
    name: str,
    value: Mapping[str, Any],
    error: type[ValueError],
    *,
    allowed: Sequence[str],
    required: bool,
) -> tuple[str, str] | None:
    """Where the profile's secret comes from: ``(setting, its value)`` (``("auth",
    "none")`` for none), or None when it names no source and none is ``required``. Exactly
    one of the ``allowed`` sources (at most one without ``required``); ``auth`` only as
    ``"none"``; a variable's name or a file's path as a non-empty string."""
    given = [k for k in KEY_SOURCES if value.get(k) is not None]
    choices = ", ".join('auth = "none"' if k == "auth" else k for k in allowed)
    if any(k not in allowed for k in given) or len(given) > 1 or (required and not given):
        need = "exactly one" if required else "at most one"
        raise error(f"{variable}: profile {name!r} needs {need} key source: {choices}")
    if not given:
        return None
    key = given[0]
    found = value[key]
    if key == "auth":
        if found != "none":
            raise error(f'{variable}: profile {name!r}: auth can only be "none"')
    elif not isinstance(found, str) or not found.strip():
        what = "a path" if key == "api_key_file" else "a variable's name"
        raise error(f"{variable}: profile {name!r}: {key} is {what}")
    return key, str(Path(found.strip()).expanduser()) if key == "api_key_file" else found.strip()
