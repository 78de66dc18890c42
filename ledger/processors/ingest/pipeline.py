"""One document, start to finish: stat, read and hash, detect, extract, chunk, spool.

``process_file`` is meant to run inside a ``ProcessPool`` child: it is CPU-bound, parses
untrusted files with C libraries, and relies on the pool's timeout and memory limit as the
last line of defence (a ``MemoryError`` is left to the pool, which reports ``too_large`` and
replaces the child). It touches no database: it returns an ``IngestOutcome`` and leaves the
chunks in a spool file that the parent reads with ``iter_spool`` and then deletes.

Every bad input ends in a ``ProcessingError`` with a stable code (``IngestErrorCode``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Set
from dataclasses import dataclass
from typing import BinaryIO, TypeVar

from ledger.errors import PermanentError, RetryableError
from ledger.processors.ingest.chunking import chunk_pieces
from ledger.processors.ingest.detect import HEAD_BYTES, DocType, detect_type
from ledger.processors.ingest.extract_text import decode_text
from ledger.processors.ingest.options import IngestErrorCode, IngestOptions
from ledger.processors.ingest.parsers import (
    BYTES_PARSED,
    Parsed,
    byte_cap,
    parse_bytes,
    parse_file,
    require_parser,
)
from ledger.processors.ingest.spool import SpoolWriter

T = TypeVar("T")
_HASH_BLOCK = 1 << 20


class NeedsIsolation(Exception):
    """The document is of a type that ``process_file`` was told not to parse here (its
    ``only_types``): the caller runs it again in the process pool. Nothing was parsed."""

    def __init__(self, doc_type: str) -> None:
        super().__init__(f"a {doc_type} document is parsed in the process pool")
        self.doc_type = doc_type


@dataclass(frozen=True, slots=True)
class StageTimings:
    """Seconds spent in each stage (they interleave: text is read, decoded and chunked in
    one pass, so each figure is the time spent in that stage's own code)."""

    read: float  # reading the file and hashing it
    extract: float  # detecting, parsing and decoding
    chunk: float
    spool: float  # writing chunks to the spool file


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What processing one file produced. The chunks are in the file at ``spool_path``."""

    sha256: str  # of the bytes that were read
    size: int  # bytes
    type: str  # a DocType value: pdf, docx, pptx, xlsx, epub, odt, rtf, html, markdown, text
    encoding: str | None  # the text encoding used (text, markdown, html); None for others
    pages: int | None  # pages of a PDF, slides, sheets or chapters; None for other types
    characters: int  # length of the extracted text (chunk offsets index into it)
    chunks: int
    timings: StageTimings
    spool_path: str


def sha256_file(path: str, *, block_size: int = _HASH_BLOCK) -> tuple[str, int]:
    """The SHA-256 hex digest and the size in bytes of the file at ``path``, read in blocks.

    Raises ``PermanentError("source_missing")`` if the file does not exist, and OSError for
    other I/O errors.
    """
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as file:
            while block := file.read(block_size):
                digest.update(block)
                size += len(block)
    except FileNotFoundError as exc:
        raise PermanentError(IngestErrorCode.SOURCE_MISSING, f"no such file: {path}") from exc
    return digest.hexdigest(), size


def process_file(
    path: str,
    *,
    expected_size: int | None,
    expected_mtime_ns: int | None,
    expected_sha256: str | None,
    options: IngestOptions,
    spool_dir: str,
    only_types: Set[DocType] | None = None,
) -> IngestOutcome:
    """Extract and chunk the document at ``path``; write the chunks to a spool in
    ``spool_dir``.

    With ``only_types``, a document detected as another type raises ``NeedsIsolation``
    right after detection, before any parser sees it.

    The file is read once (hashing as it goes) for text, Markdown, HTML and RTF; the other
    types are hashed in one pass and then parsed by their libraries from the path.
    ``expected_*`` values that are given must match (else ``source_changed``), and the file
    must look the same after processing as before. On any error no spool file is left behind.
    """
    before = _stat(path)
    if expected_size is not None and before.st_size != expected_size:
        raise PermanentError(
            IngestErrorCode.SOURCE_CHANGED,
            f"the file has {before.st_size} bytes, {expected_size} were expected",
        )
    if expected_mtime_ns is not None and before.st_mtime_ns != expected_mtime_ns:
        raise PermanentError(
            IngestErrorCode.SOURCE_CHANGED, "the file's modification time is not the expected one"
        )
    if before.st_size == 0:
        raise PermanentError(IngestErrorCode.EMPTY_FILE, "the file is empty (0 bytes)")
    if before.st_size > options.max_file_bytes:
        raise PermanentError(
            IngestErrorCode.TOO_LARGE,
            f"the file has {before.st_size} bytes, more than {options.max_file_bytes}",
        )
    run = _Run(path, options, before, only_types)
    try:
        with _open(path) as file:
            outcome = run.process(file, expected_sha256, spool_dir)
    except BaseException:
        run.discard_spool()
        raise
    after = _stat(path)
    if (after.st_size, after.st_mtime_ns, after.st_ino) != (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    ):
        run.discard_spool()
        raise PermanentError(IngestErrorCode.SOURCE_CHANGED, "the file changed while it was read")
    return outcome


class _Run:
    """The state of processing one file: hash, byte count, stage clocks, spool."""

    def __init__(
        self,
        path: str,
        options: IngestOptions,
        before: os.stat_result,
        only_types: Set[DocType] | None = None,
    ) -> None:
        self.path = path
        self.only_types = only_types
        self.options = options
        self.before = before
        self.digest = hashlib.sha256()
        self.bytes_read = 0
        self.clock = {"read": 0.0, "extract": 0.0, "chunk": 0.0, "spool": 0.0}
        self.characters = 0
        self.spool_path: str | None = None

    def process(self, file: BinaryIO, expected_sha256: str | None, spool_dir: str) -> IngestOutcome:
        options = self.options
        head = self._read(file, HEAD_BYTES)
        started = time.perf_counter()
        doc_type = detect_type(self.path, head)
        self.clock["extract"] += time.perf_counter() - started
        if self.only_types is not None and doc_type not in self.only_types:
            raise NeedsIsolation(doc_type.value)
        require_parser(doc_type)
        read_before_extract = self.clock["read"]
        if doc_type in (DocType.TEXT, DocType.MARKDOWN):
            decoded = self._timed_call(
                lambda: decode_text(self._blocks(file, head), sample_bytes=options.sample_bytes)
            )
            parsed = Parsed(((text, None) for text in decoded.pieces), encoding=decoded.encoding)
        elif doc_type in BYTES_PARSED:
            limit = byte_cap(doc_type, options)
            if self.before.st_size > limit:
                raise PermanentError(
                    IngestErrorCode.TOO_LARGE,
                    f"the {doc_type.value.upper()} has {self.before.st_size} bytes, "
                    f"more than {limit}",
                )
            data = head + self._read(file, -1)
            self._check_hash(expected_sha256)
            read_before_extract = self.clock["read"]
            parsed = self._timed_call(lambda: parse_bytes(doc_type, data, options))
            del data
        else:
            # Parsed by a library from the path: hashed in one pass first, so the hash
            # is of the bytes the library then reads.
            for _ in self._blocks(file, b""):
                pass
            self._check_hash(expected_sha256)
            read_before_extract = self.clock["read"]
            parsed = self._timed_call(lambda: parse_file(doc_type, self.path, options))
        encoding, pages, pieces = parsed.encoding, parsed.pages, parsed.pieces

        extract_and_read = _Stopwatch()
        chunking = _Stopwatch()
        chunks = chunking.wrap(
            chunk_pieces(
                extract_and_read.wrap(self._counted(pieces)),
                size=options.chunk_size,
                overlap=options.chunk_overlap,
            )
        )
        # Opened at the first chunk: a child killed while parsing leaves no partial spool.
        writer: SpoolWriter | None = None
        try:
            for chunk in chunks:
                started = time.perf_counter()
                if writer is None:
                    writer = self._open_spool(spool_dir)
                try:
                    writer.write(chunk)
                except OSError as exc:
                    raise _spool_error(exc) from exc
                self.clock["spool"] += time.perf_counter() - started
            if self.bytes_read != self.before.st_size:
                raise PermanentError(
                    IngestErrorCode.SOURCE_CHANGED,
                    f"{self.bytes_read} bytes were read, the file had {self.before.st_size}",
                )
            self._check_hash(expected_sha256)
            if writer is None:
                raise PermanentError(
                    IngestErrorCode.NO_TEXT,
                    f"the {doc_type.value} document has no text to index",
                )
            started = time.perf_counter()
            try:
                writer.commit()
            except OSError as exc:
                raise _spool_error(exc) from exc
            self.clock["spool"] += time.perf_counter() - started
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        read_during_extract = self.clock["read"] - read_before_extract
        self.clock["extract"] += extract_and_read.seconds - read_during_extract
        self.clock["chunk"] += chunking.seconds - extract_and_read.seconds
        assert self.spool_path is not None
        return IngestOutcome(
            sha256=self.digest.hexdigest(),
            size=self.bytes_read,
            type=doc_type.value,
            encoding=encoding,
            pages=pages,
            characters=self.characters,
            chunks=writer.count,
            timings=StageTimings(
                read=self.clock["read"],
                extract=max(self.clock["extract"], 0.0),
                chunk=max(self.clock["chunk"], 0.0),
                spool=self.clock["spool"],
            ),
            spool_path=self.spool_path,
        )

    def _open_spool(self, spool_dir: str) -> SpoolWriter:
        self.spool_path = os.path.join(spool_dir, f"{uuid.uuid4().hex}.spool")
        try:
            return SpoolWriter(self.spool_path)
        except OSError as exc:
            raise _spool_error(exc) from exc

    def discard_spool(self) -> None:
        if self.spool_path is not None:
            for name in (self.spool_path, self.spool_path + ".partial"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name)

    def _read(self, file: BinaryIO, size: int) -> bytes:
        started = time.perf_counter()
        try:
            data = file.read(size)
        except OSError as exc:
            raise RetryableError(
                IngestErrorCode.READ_ERROR, f"the file could not be read: {exc}", systemic=False
            ) from exc
        self.digest.update(data)
        self.bytes_read += len(data)
        self.clock["read"] += time.perf_counter() - started
        return data

    def _blocks(self, file: BinaryIO, head: bytes) -> Iterator[bytes]:
        if head:
            yield head
        while block := self._read(file, self.options.read_block_bytes):
            yield block

    def _check_hash(self, expected_sha256: str | None) -> None:
        if expected_sha256 is not None and self.digest.hexdigest() != expected_sha256.lower():
            raise PermanentError(
                IngestErrorCode.SOURCE_CHANGED, "the file's SHA-256 is not the expected one"
            )

    def _counted(
        self, pieces: Iterable[tuple[str, int | None]]
    ) -> Iterator[tuple[str, int | None]]:
        limit = self.options.max_chars_per_document
        for text, page in pieces:
            self.characters += len(text)
            if self.characters > limit:
                raise PermanentError(
                    IngestErrorCode.TOO_LARGE, f"the document has more than {limit} characters"
                )
            yield text, page

    def _timed_call(self, call: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return call()
        finally:
            self.clock["extract"] += time.perf_counter() - started


class _Stopwatch:
    """Adds up the time spent inside ``next()`` of the iterators it wraps."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, iterable: Iterable[T]) -> Iterator[T]:
        iterator = iter(iterable)
        while True:
            started = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                self.seconds += time.perf_counter() - started
            yield item


def _stat(path: str) -> os.stat_result:
    try:
        result = os.stat(path)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise PermanentError(IngestErrorCode.SOURCE_MISSING, f"no such file: {path}") from exc
    except PermissionError as exc:
        raise PermanentError(IngestErrorCode.UNREADABLE, f"permission denied: {path}") from exc
    except OSError as exc:
        raise RetryableError(
            IngestErrorCode.READ_ERROR, f"the file could not be examined: {exc}", systemic=False
        ) from exc
    if not stat.S_ISREG(result.st_mode):
        raise PermanentError(IngestErrorCode.UNREADABLE, f"not a regular file: {path}")
    return result


def _open(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError as exc:
        raise PermanentError(IngestErrorCode.SOURCE_MISSING, f"no such file: {path}") from exc
    except (PermissionError, IsADirectoryError) as exc:
        raise PermanentError(IngestErrorCode.UNREADABLE, f"cannot open: {exc}") from exc
    except OSError as exc:
        raise RetryableError(
            IngestErrorCode.READ_ERROR, f"the file could not be opened: {exc}", systemic=False
        ) from exc


def _spool_error(exc: OSError) -> RetryableError:
    # A full or broken spool disk is the world's fault, not the document's.
    return RetryableError(
        IngestErrorCode.SPOOL_FAILED, f"the chunk spool could not be written: {exc}", systemic=True
    )
