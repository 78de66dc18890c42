"""The files an ingest reads and leaves: its source resolved under the roots, its status,
its name and first bytes, its hash; where chunk spools go, how they are read back in
batches and removed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from ledger.errors import PermanentError
from ledger.model import Cleanup
from ledger.processors.base import Document, ProcessorContext
from ledger.processors.ingest.chunking import ChunkRecord
from ledger.processors.ingest.detect import HEAD_BYTES
from ledger.processors.ingest.pipeline import sha256_file
from ledger.processors.ingest.selection import excluded_by_content
from ledger.processors.ingest.spool import iter_spool

STORE_BATCH = 1_000  # chunks per INSERT: bounds the memory of storing a huge document
OUTSIDE_ROOTS = "outside_roots"


def _inside(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def resolve_source(source: str, roots: Sequence[str]) -> str:
    """The path to read for ``source``: as given, or, when ``roots`` are in force, its real
    path, which must lie under one of them (a symbolic link may not lead out)."""
    if not roots:
        return source
    real = os.path.realpath(source)
    if not _inside(real, roots):
        raise PermanentError(
            OUTSIDE_ROOTS, f"{source} resolves to {real}, outside the allowed folders"
        )
    return real


def file_status(path: str) -> os.stat_result | None:
    """The file's status, or None when it is not a readable regular file (then nothing is
    looked up or hashed, and ``process_file`` reports why, with the right code)."""
    try:
        result = os.stat(path)
    except OSError:
        return None
    return result if stat.S_ISREG(result.st_mode) else None


def locate(source: str, roots: Sequence[str]) -> tuple[str, os.stat_result | None]:
    """Resolve and stat in one trip to a thread (an unchanged re-run does little else)."""
    path = resolve_source(source, roots)
    return path, file_status(path)


def locate_and_judge(
    source: str, roots: Sequence[str]
) -> tuple[str, os.stat_result | None, str | None]:
    """:func:`locate`, then :func:`excluded_content` of a regular file, in one step: a
    small document's file steps cost less than the hand-offs between them."""
    path = resolve_source(source, roots)
    return (path, *status_and_judge(path))


def status_and_judge(path: str) -> tuple[os.stat_result | None, str | None]:
    """:func:`file_status`, then :func:`excluded_content` of a regular file, in one trip."""
    before = file_status(path)
    return before, None if before is None else excluded_content(path)


def display_name(doc: Document) -> str:
    """The name a document is judged by: an upload's original file name, else its source
    (an upload's storage name is random and says nothing about what it holds)."""
    meta = doc.meta if isinstance(doc.meta, dict) else {}
    # A member of an archive or email is judged by its path inside it (its file's name is
    # the ledger's own).
    for key in ("member_path", "filename"):
        name = meta.get(key)
        if isinstance(name, str) and name:
            return name
    return doc.source


def excluded_content(path: str) -> str | None:
    """What the file is by its first bytes, when that is not a document; None when it may
    be one or cannot be read (then ``process_file`` reports why, with the right code)."""
    try:
        with open(path, "rb") as file:
            head = file.read(HEAD_BYTES)
    except OSError:
        return None
    return excluded_by_content(head)


def content_sha256(path: str) -> str | None:
    try:
        return sha256_file(path)[0]
    except (OSError, PermanentError):
        return None  # gone or unreadable since: process_file reports it


async def spool_batches(path: str) -> AsyncIterator[list[ChunkRecord]]:
    """The spool's chunks in batches, each read in a thread (a 2 GB document's spool is
    never in memory: one batch at a time)."""
    batches: Iterator[list[ChunkRecord]] = iter_spool(path, batch_size=STORE_BATCH)
    try:
        while True:
            batch = await asyncio.to_thread(next, batches, None)
            if batch is None:
                return
            yield batch
    finally:
        batches.close()  # type: ignore[attr-defined]


def remover(path: str) -> Any:
    def remove() -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    return remove


def chained(first: Cleanup | None, second: Cleanup) -> Cleanup:
    if first is None:
        return second

    def both() -> None:
        try:
            first()
        finally:
            second()

    return both


def spool_dir_for(context: ProcessorContext) -> str:
    """Where this machine's workers put chunk spools (created if needed)."""
    directory = Path(context.settings.home) / "spool"
    directory.mkdir(parents=True, exist_ok=True)
    return str(directory)
