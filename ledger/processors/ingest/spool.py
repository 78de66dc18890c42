"""Chunk spool files: how a worker child hands a document's chunks to its parent.

The child writes chunks to disk as it makes them and the parent reads them back in batches,
so the chunks of a 2 GB text file never sit in memory in either process, and nothing large
crosses the pipe between them.

Format: the magic ``LGSPOOL1``; then per chunk a 4-byte little-endian length and the chunk
as a msgpack array ``[ordinal, text, char_start, char_end, page]``; then the end marker
``0xFFFFFFFF`` and the 8-byte count of chunks. A spool is written as ``NAME.partial`` and
renamed to ``NAME`` only when complete, so a reader never sees half a spool; a missing end
marker or a wrong count raises ``SpoolCorrupt``.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import time
from collections.abc import Iterator
from types import TracebackType
from typing import BinaryIO

import msgspec

from ledger.errors import LedgerError
from ledger.processors.ingest.chunking import ChunkRecord

MAGIC = b"LGSPOOL1"
PARTIAL_SUFFIX = ".partial"
SPOOL_SUFFIX = ".spool"
SOURCE_SUFFIX = ".source"  # a worker's local copy of an object it reads (object_source)
_LENGTH = struct.Struct("<I")
_COUNT = struct.Struct("<Q")
_END = 0xFFFFFFFF
_BUFFER = 1 << 20


class SpoolCorrupt(LedgerError):
    """The chunk spool file is incomplete or damaged."""


class SpoolWriter:
    """Writes chunk records to ``path`` (via ``path.partial``); use as a context manager.

    Leaving the block normally completes the spool; leaving it by an exception removes the
    partial file.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.count = 0
        self._partial = path + PARTIAL_SUFFIX
        # Unbuffered, with a buffer of its own that grows with what is written (up to
        # _BUFFER): a file object's buffer is allocated whole up front, and a megabyte
        # allocated and freed for each small document's spool was measurable.
        self._file: BinaryIO = open(self._partial, "wb", buffering=0)  # noqa: SIM115
        self._pending = bytearray(MAGIC)
        self._encoder = msgspec.msgpack.Encoder()

    def write(self, record: ChunkRecord) -> None:
        data = self._encoder.encode(record)
        self._pending += _LENGTH.pack(len(data))
        self._pending += data
        self.count += 1
        if len(self._pending) >= _BUFFER:
            self._flush()

    def commit(self) -> None:
        self._pending += _LENGTH.pack(_END)
        self._pending += _COUNT.pack(self.count)
        self._flush()
        self._file.close()
        os.replace(self._partial, self.path)

    def _flush(self) -> None:
        view = memoryview(self._pending)
        while view:  # a raw write may take less than it is given
            view = view[self._file.write(view) :]
        view.release()
        del self._pending[:]

    def abort(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._partial)

    def __enter__(self) -> SpoolWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def iter_spool(path: str, batch_size: int = 1000) -> Iterator[list[ChunkRecord]]:
    """Read the chunks of a complete spool in batches of at most ``batch_size``.

    Raises ``SpoolCorrupt`` when the file is not a spool, is cut short, or its count does
    not match. The caller deletes the spool when it has stored the chunks.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    decoder = msgspec.msgpack.Decoder(ChunkRecord)
    count = 0
    raw = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by the reader below)
    try:
        size = os.fstat(raw.fileno()).st_size
    except BaseException:
        raw.close()
        raise
    # A buffer the size of a small spool, not a megabyte (see SpoolWriter).
    buffer_size = max(io.DEFAULT_BUFFER_SIZE, min(_BUFFER, size))
    with io.BufferedReader(raw, buffer_size=buffer_size) as file:
        if file.read(len(MAGIC)) != MAGIC:
            raise SpoolCorrupt(f"{os.path.basename(path)} is not a chunk spool")
        batch: list[ChunkRecord] = []
        while True:
            header = file.read(_LENGTH.size)
            if len(header) < _LENGTH.size:
                raise SpoolCorrupt(f"{os.path.basename(path)} ends without its end marker")
            (length,) = _LENGTH.unpack(header)
            if length == _END:
                break
            data = file.read(length)
            if len(data) < length:
                raise SpoolCorrupt(f"{os.path.basename(path)} ends inside a record")
            try:
                batch.append(decoder.decode(data))
            except msgspec.DecodeError as exc:
                raise SpoolCorrupt(f"{os.path.basename(path)} has a damaged record") from exc
            count += 1
            if len(batch) >= batch_size:
                yield batch
                batch = []
        trailer = file.read(_COUNT.size)
        if len(trailer) < _COUNT.size or _COUNT.unpack(trailer)[0] != count:
            raise SpoolCorrupt(f"{os.path.basename(path)} has a wrong chunk count")
        if batch:
            yield batch


def remove_stale_partials(spool_dir: str, older_than: float, *, complete: bool = False) -> int:
    """Delete ``*.partial`` spools not modified for ``older_than`` seconds (left by killed
    children); with ``complete``, also complete ``*.spool`` files that old (left by a
    worker killed before it stored them) and local copies of objects (``*.source``).
    Return how many were deleted. A copy of an object carries the object's (old)
    modification time, so its age is its ctime: when it was written here."""
    cutoff = time.time() - older_than
    removed = 0
    suffixes = (PARTIAL_SUFFIX, SPOOL_SUFFIX, SOURCE_SUFFIX) if complete else (PARTIAL_SUFFIX,)
    with os.scandir(spool_dir) as entries:
        for entry in entries:
            if not entry.name.endswith(suffixes):
                continue
            st = entry.stat()
            age = st.st_ctime if entry.name.endswith(SOURCE_SUFFIX) else st.st_mtime
            if age < cutoff:
                try:
                    os.unlink(entry.path)
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed
