"""How a document is cited: the one definition of a source's display name.

Search hits, chunk streams and exports all name a document's source through
:func:`source_name`, so that an upload is shown by the file name it came with and the path
it is stored under stays internal.
"""

from __future__ import annotations

from typing import Any


def source_name(source: str, meta: Any) -> str:
    """How a document's source is shown: an upload by its file name, never its storage."""
    if isinstance(meta, dict) and ("upload_id" in meta or "filename" in meta):
        name = meta.get("filename")
        return name if isinstance(name, str) and name else "upload"
    return source
