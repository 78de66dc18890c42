"""Operator settings given either inline or as a file: one reader for all of them."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any


def read_json_or_toml(value: str) -> Any:
    """Inline JSON (``{...}`` or ``[...]``), or the contents of the JSON or TOML file
    (by its suffix) that ``value`` names.

    Raises OSError when the file cannot be read and ValueError (JSON's and TOML's decode
    errors are ValueErrors) when the text is not valid; callers word both for the operator.
    """
    text = value.strip()
    if text.startswith(("{", "[")):
        return json.loads(text)
    path = Path(text).expanduser()
    content = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        return tomllib.loads(content)
    return json.loads(content)
