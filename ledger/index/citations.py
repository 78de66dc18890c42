"""How a document is cited: the one definition of a source's display name.

Search hits, chunk streams and exports all name a document's source through
:func:`source_name`: an upload by the file name it came with (the path it is stored under
stays internal), a server file by its path relative to the folder its batch was submitted
from (``docs/guide/intro.md`` for ``/srv/docs/guide/intro.md`` submitted as ``/srv/docs``),
and by its full path when the batch does not know that folder.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from ledger.model import SearchHit


def source_name(source: str, meta: Any, roots: Any = None) -> str:
    """How a document's source is shown: an upload by its file name, never its storage; a
    path below one of ``roots`` (its batch's) relative to the deepest, under that root's name;
    a member of an archive or email as its parent's name, ``!/`` and its path inside it."""
    member = _member(meta)
    if member is not None:
        parent, path = member
        return f"{source_name(parent.get('source', ''), parent.get('meta'), roots)}!/{path}"
    if isinstance(meta, dict) and ("upload_id" in meta or "filename" in meta):
        name = meta.get("filename")
        return name if isinstance(name, str) and name else "upload"
    best: tuple[int, str] | None = None
    for root in roots if isinstance(roots, list | tuple) else ():
        if not isinstance(root, str) or not root:
            continue
        base = root.rstrip("/")
        if source in (root, base):
            relative = ""
        elif source.startswith(base + "/"):
            relative = source[len(base) + 1 :]
        else:
            continue
        name = PurePosixPath(base).name
        shown = "/".join(part for part in (name, relative) if part) or source
        if best is None or len(base) > best[0]:
            best = (len(base), shown)
    return source if best is None else best[1]


def _member(meta: Any) -> tuple[dict[str, Any], str] | None:
    """(the parent's source and meta, the member path) of a child document's meta."""
    if not isinstance(meta, dict):
        return None
    parent, path = meta.get("member_of"), meta.get("member_path")
    if isinstance(parent, dict) and isinstance(path, str) and path:
        return parent, path
    return None


def search_hit(row: Any, *, snippet: str, score: float) -> SearchHit:
    """A matching chunk's row as a hit, with how it matched: the row holds the chunk's
    ``chunk_id``, ``document_id``, ``batch_id``, ``ordinal``, ``page``, ``char_start``,
    ``char_end`` and ``text``, and its document's ``source``, ``meta`` and batch ``roots``."""
    return SearchHit(
        chunk_id=row.chunk_id,
        document_id=row.document_id,
        batch_id=row.batch_id,
        source=source_name(row.source, row.meta),
        source_name=source_name(row.source, row.meta, row.roots),
        ordinal=row.ordinal,
        page=row.page,
        char_start=row.char_start,
        char_end=row.char_end,
        text=row.text,
        snippet=snippet,
        score=score,
    )
