"""Reading the roots settings: the server folders and object prefixes (``s3://``) callers
may submit from (LEDGER_ALLOWED_ROOTS, LEDGER_TENANT_ROOTS, LEDGER_STORAGE_URL).

Both kinds arrive mixed in one variable; the URLs are taken out before the folders are
read as paths, so a URL never meets ``Path`` (which would fold its ``//``) or a local check.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ledger.config_files import read_json_or_toml

_OBJECT_SCHEME = "s3://"
# A separator (comma, or os.pathsep) that is not the colon of an "s3://" scheme.
_ROOT_SEPARATOR = re.compile(r",|" + re.escape(os.pathsep) + r"(?!//)")


def root_entries(value: object) -> list[object]:
    """The entries of a roots value: a string is split on commas and os.pathsep."""
    if isinstance(value, str):
        return [p.strip() for p in _ROOT_SEPARATOR.split(value) if p.strip()]
    return list(value) if isinstance(value, list | tuple) else [value]


def split_objects(entries: list[object]) -> tuple[list[object], list[str]]:
    """``entries`` as (local paths, object URLs)."""
    paths: list[object] = []
    urls: list[str] = []
    for entry in entries:
        if isinstance(entry, str) and entry[:5].lower() == _OBJECT_SCHEME:
            urls.append(entry)
        else:
            paths.append(entry)
    return paths, urls


def read_tenant_roots(value: object) -> object:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return {}
    if not text.startswith("{") and not Path(text).expanduser().is_file():
        raise ValueError("LEDGER_TENANT_ROOTS must be inline JSON or a JSON or TOML file")
    return read_json_or_toml(text)


def object_root(url: str, setting: str) -> str:
    """``url`` checked as an object root: ``s3://bucket`` or ``s3://bucket/prefix``."""
    from ledger.errors import InvalidInput
    from ledger.storage.urls import ObjectUrl

    try:
        return str(ObjectUrl.parse(url.strip()))
    except InvalidInput as exc:
        raise ValueError(f"{setting}: {exc.message}") from exc


def move_object_roots(data: object) -> object:
    """The settings input ``data`` with the s3:// entries of LEDGER_ALLOWED_ROOTS and
    LEDGER_TENANT_ROOTS moved to the object roots settings."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    if "allowed_roots" in data:
        paths, urls = split_objects(root_entries(data["allowed_roots"]))
        data["allowed_roots"] = paths
        data["allowed_object_roots"] = [*data.get("allowed_object_roots", []), *urls]
    if "tenant_roots" in data:
        tenants = read_tenant_roots(data["tenant_roots"])
        if isinstance(tenants, dict):
            local: dict[str, object] = {}
            objects: dict[str, list[str]] = dict(data.get("tenant_object_roots", {}))
            for tenant, roots in tenants.items():
                if not isinstance(roots, list):
                    local[tenant] = roots  # the field's own validation says what is wrong
                    continue
                local[tenant], urls = split_objects(roots)
                if urls:
                    objects[str(tenant)] = [*objects.get(str(tenant), []), *urls]
            data["tenant_roots"], data["tenant_object_roots"] = local, objects
    return data
