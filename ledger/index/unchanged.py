"""When a source is unchanged: one rule for the submission, the dry-run plan and the worker.

A file is unchanged when its size and modification time are the recorded ones; an object
(``s3://...``) when its ETag, size and last-modified time are. The ETag matters because S3
reports last-modified in whole seconds and a replacement of the same size within that
second (or a copy that keeps the time) would otherwise pass as the old object. An object's
ETag is recorded in its document's ``meta``; a file has none, so the ETag comparison holds
for files as it stands.

Three checks use the rule: :func:`unchanged_clause` skips a new batch's sources at submit
(the dry-run plan runs that same submission), :func:`changed_since` finds the sources of a
resubmitted batch that changed, and :meth:`ledger.artifacts.Holder.unchanged` lets the
worker skip a source whose indexed version is the one it just read (it lives with the facts
a processor is given, since a processor never imports the ledger's storage).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_
from sqlalchemy.sql import ColumnElement

from ledger.artifacts import ETAG, etag_of
from ledger.model import SourceSpec

__all__ = ["ETAG", "changed_since", "etag_of", "unchanged_clause"]


def unchanged_clause(holder: Any, new: Any) -> ColumnElement[bool]:
    """SQL: the document ``new`` (a table or alias of ``documents``) has the same facts as
    the indexed document ``holder``: size, modification time and ETag (both none for a
    file), and the SHA-256 when ``new`` was given one."""
    return and_(
        holder.c.source_sha256.is_not(None),
        holder.c.source_size == new.c.source_size,
        holder.c.source_mtime_ns == new.c.source_mtime_ns,
        holder.c.meta[ETAG].as_string().is_not_distinct_from(new.c.meta[ETAG].as_string()),
        new.c.source_sha256.is_(None) | (new.c.source_sha256 == holder.c.source_sha256),
    )


def changed_since(spec: SourceSpec, row: Any) -> bool:
    """A known source changed when a fact given now differs from the recorded one in
    ``row`` (a documents row): its size, modification time, SHA-256 or ETag. A fact not
    given now, or not recorded then, is not compared."""
    return any(
        new is not None and old is not None and new != old
        for new, old in (
            (spec.size, row.source_size),
            (spec.mtime_ns, row.source_mtime_ns),
            (spec.sha256.lower() if spec.sha256 else None, row.source_sha256),
            (etag_of(spec.meta), etag_of(row.meta)),
        )
    )
