"""Streaming multipart/form-data uploads straight into storage.

The request body is parsed as it arrives (the ``multipart`` push parser Litestar itself
depends on): each file part is written, while its SHA-256 and size are computed, to a
destination: a server-named file in the storage folder (:class:`LocalFolder`), or an object
of the store sent part by part (:class:`ledger.api.object_uploads.ObjectFolder`). Memory
stays at a buffer or two however large the upload. Anything that goes wrong removes every
file or object this request wrote.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import unicodedata
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

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

log = logging.getLogger(__name__)


def clean_filename(name: str | None) -> str | None:
    """A client's file name fit to keep as metadata: NFC, no control, format (bidi,
    zero-width) or unassigned characters, no folders, at most 255 characters."""
    if not name:
        return None
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:MAX_FILENAME] or None


RESERVED_NAMES = frozenset({"uploads"})
NAME_ATTEMPTS = 8  # fresh random names tried when one is taken


def safe_component(value: str | None) -> str:
    """A folder name for a tenant or batch id that cannot escape its parent folder."""
    if value is None:
        return "_local"
    ok = all(ch.isascii() and (ch.isalnum() or ch in "-_.") for ch in value)
    # Names the storage layout uses itself (the tus folder, keyless use's "_local") are
    # never a tenant's or batch's own: "uploads" as a tenant would share the tus files' folder.
    own = value in RESERVED_NAMES or value.startswith(("_", "."))
    if ok and 0 < len(value) <= 100 and not own:
        return value
    digest = hmac.new(b"ledger-storage", value.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return "h-" + digest.hexdigest()[:32]


@dataclass(frozen=True)
class StoredFile:
    """One file part, stored: ``source`` is the file's path or the object's URL."""

    source: str
    filename: str | None
    content_type: str | None
    size: int
    sha256: str
    mtime_ns: int
    etag: str | None = None  # an object's, as the store answered

    @property
    def path(self) -> Path:
        """The stored file (a local destination's)."""
        return Path(self.source)


class FileSink(Protocol):
    """Where one file part's bytes go."""

    async def open(self) -> None:
        """Make the file (or nothing yet)."""

    async def write(self, data: bytes) -> None:
        """Take the next bytes (about ``FLUSH_BYTES`` at a time)."""

    async def close(self) -> tuple[str, int, str | None]:
        """Make the bytes durable: the source, its mtime (ns) and its ETag if any."""

    async def discard(self) -> None:
        """Remove whatever this sink made (also after :meth:`close`)."""


class Destination(Protocol):
    """Where a request's file parts go."""

    async def prepare(self) -> None:
        """Get ready for the first file (a folder to make, for example)."""

    def new_file(self) -> FileSink:
        """A sink for the next file part."""

    async def remove(self, stored: list[StoredFile]) -> None:
        """Remove files stored by this request that could not be recorded."""


class _LocalFile:
    """A new file under a random name in the storage folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path: Path | None = None  # set once this sink made the file: it may remove it
        self._file: IO[bytes] | None = None

    async def open(self) -> None:
        """Create a new file under a random name; another name if that one is taken (the
        file that holds it is someone else's and stays as it is)."""
        for _ in range(NAME_ATTEMPTS):
            path = self.folder / uuid.uuid4().hex
            try:
                self._file = await asyncio.to_thread(open, path, "xb")
            except FileExistsError:
                log.warning("stored file name %s is taken; trying another", path.name)
                continue
            self.path = path
            return
        raise OSError(f"no free file name in {self.folder} after {NAME_ATTEMPTS} attempts")

    async def write(self, data: bytes) -> None:
        assert self._file is not None
        await asyncio.to_thread(self._file.write, data)

    async def close(self) -> tuple[str, int, str | None]:
        assert self._file is not None and self.path is not None
        file = self._file
        self._file = None

        def close() -> int:
            file.flush()
            os.fsync(file.fileno())
            file.close()
            return os.stat(file.name).st_mtime_ns

        return str(self.path), await asyncio.to_thread(close), None

    async def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.path is not None:
            await discard_paths([self.path])


class LocalFolder:
    """The storage folder of a batch: one new file per part."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def prepare(self) -> None:
        self.folder = await asyncio.to_thread(_make_folder, self.folder)

    def new_file(self) -> FileSink:
        return _LocalFile(self.folder)

    async def remove(self, stored: list[StoredFile]) -> None:
        await discard_paths([f.path for f in stored])


class _Writer:
    """One file part on its way to its sink, hashed and counted as it goes."""

    def __init__(self, sink: FileSink, segment: MultipartSegment) -> None:
        self.sink = sink
        self.filename = clean_filename(segment.filename)
        self.content_type = segment.content_type
        self._hash = hashlib.sha256()
        self._size = 0
        self._pending: list[bytes] = []
        self._pending_size = 0

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
            await asyncio.to_thread(self._hash.update, data)
            await self.sink.write(data)

    async def finish(self) -> StoredFile:
        await self._flush()
        source, mtime_ns, etag = await self.sink.close()
        return StoredFile(
            source=source,
            filename=self.filename,
            content_type=self.content_type,
            size=self._size,
            sha256=self._hash.hexdigest(),
            mtime_ns=mtime_ns,
            etag=etag,
        )


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
    stream: AsyncIterator[bytes],
    content_type: str | None,
    destination: Path | Destination,
    *,
    max_files: int,
) -> list[StoredFile]:
    """Store every file part of the multipart body in ``stream`` at ``destination`` (a
    folder: one new file per part).

    Parts without a file name (plain form fields) are read and ignored. Returns the stored
    files in the order they came; on any error, removes them all and raises.
    """
    boundary = boundary_of(content_type)
    target = LocalFolder(destination) if isinstance(destination, Path) else destination
    await target.prepare()
    stored: list[StoredFile] = []
    writer: _Writer | None = None
    try:
        with PushMultipartParser(boundary, max_segment_count=max_files, strict=True) as parser:
            async for chunk in stream:
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        if event.filename is not None:
                            writer = _Writer(target.new_file(), event)
                            await writer.sink.open()
                    elif event:
                        if writer is not None:
                            await writer.feed(bytes(event))
                    elif writer is not None:
                        stored.append(await writer.finish())
                        writer = None
                if parser.closed:
                    break
    except ParserLimitReached as exc:
        await _discard(target, stored, writer)
        raise HTTPException(
            status_code=413, detail=f"too many parts in one upload (at most {max_files}): {exc}"
        ) from None
    except ParserError as exc:
        await _discard(target, stored, writer)
        raise ClientException(f"malformed multipart body: {exc}") from None
    except BaseException:
        await _discard(target, stored, writer)
        raise
    if not stored:
        raise ClientException("the upload holds no file parts (parts need a filename)")
    return stored


def _make_folder(folder: Path) -> Path:
    """``folder``, created if needed; when a file is in its way, a new sibling folder with a
    random suffix (stored files are found by the path their document names, not by folder)."""
    candidate = folder
    for _ in range(NAME_ATTEMPTS):
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            log.warning("storage folder %s is taken by a file; using another", candidate)
            candidate = folder.with_name(f"{folder.name}-{uuid.uuid4().hex[:12]}")
            continue
        return candidate
    raise OSError(f"no free storage folder beside {folder} after {NAME_ATTEMPTS} attempts")


async def _discard(target: Destination, stored: list[StoredFile], writer: _Writer | None) -> None:
    # Shielded: what this request wrote goes even when the request is cancelled.
    async def discard() -> None:
        if writer is not None:
            await writer.sink.discard()
        await target.remove(stored)

    await asyncio.shield(discard())


async def discard_paths(paths: list[Path]) -> None:
    """Remove files an aborted request wrote (shielded: runs even when cancelled)."""

    def remove() -> None:
        for path in paths:
            path.unlink(missing_ok=True)

    await asyncio.shield(asyncio.to_thread(remove))
