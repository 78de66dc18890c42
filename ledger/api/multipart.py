"""Streaming multipart/form-data uploads straight into the storage folder.

The request body is parsed as it arrives (the ``multipart`` push parser Litestar itself
depends on): each file part is written to a server-named file while its SHA-256 and size are
computed, so memory stays at one buffer however large the upload. Anything that goes wrong
removes every file this request wrote.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import unicodedata
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from litestar.exceptions import ClientException, HTTPException
from multipart import (  # type: ignore[import-untyped]
    MultipartSegment,
    ParserError,
    ParserLimitReached,
    PushMultipartParser,
    parse_options_header,
)

FLUSH_BYTES = 1024 * 1024  # bytes gathered before one write+hash in a thread
MAX_FILENAME = 255
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def clean_filename(name: str | None) -> str | None:
    """A client's file name fit to keep as metadata: NFC, no control, format (bidi,
    zero-width) or unassigned characters, no folders, at most 255 characters."""
    if not name:
        return None
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:MAX_FILENAME] or None


def safe_component(value: str | None) -> str:
    """A folder name for a tenant or batch id that cannot escape its parent folder."""
    if value is None:
        return "_local"
    ok = all(ch.isascii() and (ch.isalnum() or ch in "-_.") for ch in value)
    if ok and 0 < len(value) <= 100 and not value.startswith("."):
        return value
    digest = hmac.new(b"ledger-storage", value.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return "h-" + digest.hexdigest()[:32]


@dataclass(frozen=True)
class StoredFile:
    path: Path
    filename: str | None
    content_type: str | None
    size: int
    sha256: str
    mtime_ns: int


class _Writer:
    """One file part on its way to disk."""

    def __init__(self, path: Path, segment: MultipartSegment) -> None:
        self.path = path
        self.filename = clean_filename(segment.filename)
        self.content_type = segment.content_type
        self._hash = hashlib.sha256()
        self._size = 0
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._file: IO[bytes] | None = None

    async def open(self) -> None:
        self._file = await asyncio.to_thread(open, self.path, "xb")

    def _write(self, data: bytes) -> None:
        assert self._file is not None
        self._hash.update(data)
        self._file.write(data)

    async def feed(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= FLUSH_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
            self._size += len(data)
            await asyncio.to_thread(self._write, data)

    async def finish(self) -> StoredFile:
        await self._flush()
        assert self._file is not None
        file = self._file
        self._file = None

        def close() -> int:
            file.flush()
            os.fsync(file.fileno())
            file.close()
            return os.stat(self.path).st_mtime_ns

        mtime_ns = await asyncio.to_thread(close)
        return StoredFile(
            path=self.path,
            filename=self.filename,
            content_type=self.content_type,
            size=self._size,
            sha256=self._hash.hexdigest(),
            mtime_ns=mtime_ns,
        )

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def boundary_of(content_type: str | None) -> str:
    """The multipart boundary of a Content-Type header; 415/400 when there is none."""
    kind, options = parse_options_header(content_type or "")
    if kind != "multipart/form-data":
        raise HTTPException(
            status_code=415,
            detail="send the files as multipart/form-data (one part per file)",
        )
    boundary = options.get("boundary")
    if not boundary:
        raise ClientException("multipart/form-data without a boundary parameter")
    return str(boundary)


async def store_files(
    stream: AsyncIterator[bytes], content_type: str | None, folder: Path, *, max_files: int
) -> list[StoredFile]:
    """Write every file part of the multipart body in ``stream`` to a new file in ``folder``.

    Parts without a file name (plain form fields) are read and ignored. Returns the stored
    files in the order they came; on any error, removes them all and raises.
    """
    boundary = boundary_of(content_type)
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    stored: list[StoredFile] = []
    writer: _Writer | None = None
    try:
        with PushMultipartParser(boundary, max_segment_count=max_files, strict=True) as parser:
            async for chunk in stream:
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        if event.filename is not None:
                            writer = _Writer(folder / uuid.uuid4().hex, event)
                            await writer.open()
                    elif event:
                        if writer is not None:
                            await writer.feed(bytes(event))
                    elif writer is not None:
                        stored.append(await writer.finish())
                        writer = None
                if parser.closed:
                    break
    except ParserLimitReached as exc:
        await _discard(stored, writer)
        raise HTTPException(
            status_code=413, detail=f"too many parts in one upload (at most {max_files}): {exc}"
        ) from None
    except ParserError as exc:
        await _discard(stored, writer)
        raise ClientException(f"malformed multipart body: {exc}") from None
    except BaseException:
        await _discard(stored, writer)
        raise
    if not stored:
        raise ClientException("the upload holds no file parts (parts need a filename)")
    return stored


async def _discard(stored: list[StoredFile], writer: _Writer | None) -> None:
    paths = [s.path for s in stored]
    if writer is not None:
        writer.abort()
        paths.append(writer.path)
    await discard_paths(paths)


async def discard_paths(paths: list[Path]) -> None:
    """Remove files an aborted request wrote (shielded: runs even when cancelled)."""

    def remove() -> None:
        for path in paths:
            path.unlink(missing_ok=True)

    await asyncio.shield(asyncio.to_thread(remove))
