"""Exporting the chunk index: every chunk of some batches as JSON Lines or Parquet.

A row is a :class:`~ledger.index.chunk_reads.ChunkRecord`, the same record the NDJSON chunk
stream of the API sends: chunk, document and batch ids, ordinal, text, page, character
offsets, the source's display name, the content hashes, and with ``vectors`` each chunk's
stored vectors by model. Chunks are read in keyset pages (one bounded read transaction
each) and written as they come, so memory is bounded by a page (JSON Lines) or a row group
(Parquet), whatever the batches' size. The file is written to a temporary file in the same
folder and renamed over the target only when the whole export succeeded: a failed export
leaves no partial file, and an older file of that name untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from ledger.errors import InvalidInput
from ledger.index.chunk_reads import MAX_PAGE, ChunkRecord

if TYPE_CHECKING:
    from ledger.app import Ledger

FORMATS = ("jsonl", "parquet")
PAGE = 1_000  # chunks per read
ROW_GROUP = 10_000  # Parquet rows per row group: what the Parquet writer holds at most
PARQUET_EXTRA = "parquet"


@dataclass
class Exported:
    """What an export wrote."""

    batches: int = 0
    chunks: int = 0
    with_vectors: int = 0  # chunks that had at least one vector


async def all_batch_ids(ledger: Ledger) -> list[str]:
    """Every batch of the ledger, oldest first (ids only: a few bytes a batch)."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = await ledger.reads.batches(cursor=cursor, limit=200)
        ids.extend(b.id for b in page.items)
        if page.next_cursor is None:
            return ids[::-1]  # the list pages newest first; files read better oldest first
        cursor = page.next_cursor


async def chunk_pages(
    source: Ledger,
    batch_ids: Sequence[str],
    *,
    vectors: bool,
    model: str | None,
    page: int = PAGE,
) -> AsyncIterator[list[ChunkRecord]]:
    """The batches' chunks page by page (chunk id order within a batch), each page one
    bounded read; :class:`~ledger.errors.NotFound` when a batch does not exist."""
    if not 1 <= page <= MAX_PAGE:
        raise InvalidInput(f"the page size must be from 1 to {MAX_PAGE}")
    for batch_id in batch_ids:
        after = 0
        while True:
            rows = await source.index.batch_chunks(
                batch_id, after=after, limit=page, vectors=vectors, model=model
            )
            if rows:
                yield rows
                after = rows[-1].chunk_id
            if len(rows) < page:
                break


class Writer(Protocol):
    def write(self, rows: list[ChunkRecord]) -> None: ...

    def close(self) -> None: ...


class JsonlWriter:
    """One JSON object a line, encoded as the API's NDJSON chunk stream encodes them."""

    def __init__(self, stream: IO[bytes]) -> None:
        import msgspec

        self._stream = stream
        self._encoder = msgspec.json.Encoder()

    def write(self, rows: list[ChunkRecord]) -> None:
        self._stream.write(b"".join(self._encoder.encode(r) + b"\n" for r in rows))

    def close(self) -> None:
        self._stream.flush()


def require_pyarrow() -> None:
    """Raise :class:`InvalidInput` naming the extra when pyarrow is not installed."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError as exc:
        raise InvalidInput(
            f"Parquet export needs pyarrow: pip install 'ledger[{PARQUET_EXTRA}]'"
        ) from exc


def parquet_schema() -> Any:
    """The Parquet columns: the JSON Lines fields, typed; vectors as model -> float32 list."""
    import pyarrow as pa

    fields: list[pa.Field[Any]] = [
        pa.field("chunk_id", pa.int64(), nullable=False),
        pa.field("document_id", pa.int64(), nullable=False),
        pa.field("batch_id", pa.string(), nullable=False),
        pa.field("ordinal", pa.int64(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("page", pa.int64()),
        pa.field("char_start", pa.int64(), nullable=False),
        pa.field("char_end", pa.int64(), nullable=False),
        pa.field("source_name", pa.string(), nullable=False),
        pa.field("document_sha256", pa.string()),
        pa.field("text_sha256", pa.string(), nullable=False),
        pa.field("vectors", pa.map_(pa.string(), pa.list_(pa.float32()))),
    ]
    return pa.schema(fields)


class ParquetWriter:
    """Rows buffered up to ``row_group`` and written as one row group: bounded memory.

    Each page is turned into Arrow columns as it comes (a vector then takes 4 bytes a
    dimension, not a Python float object of 24 and a list slot of 8 each), so what waits
    for the row group is about its size on disk before compression, not several times it.
    """

    def __init__(self, stream: IO[bytes], *, row_group: int = ROW_GROUP) -> None:
        import pyarrow.parquet as pq

        self._schema = parquet_schema()
        self._writer = pq.ParquetWriter(stream, self._schema, compression="zstd")
        self._row_group = row_group
        self._pending: list[Any] = []  # Arrow record batches not yet written
        self._held = 0  # rows in them

    @property
    def held(self) -> int:
        """Rows converted but not yet written out."""
        return self._held

    def write(self, rows: list[ChunkRecord]) -> None:
        if not rows:
            return
        self._pending.append(self._columns(rows))
        self._held += len(rows)
        while self._held >= self._row_group:
            self._flush(self._row_group)

    def _columns(self, rows: list[ChunkRecord]) -> Any:
        import pyarrow as pa

        columns: dict[str, list[Any]] = {name: [] for name in self._schema.names}
        for r in rows:
            for name in self._schema.names:
                value = getattr(r, name)
                if name == "vectors" and value is not None:
                    value = list(value.items())
                columns[name].append(value)
        return pa.RecordBatch.from_pydict(columns, schema=self._schema)

    def _flush(self, count: int) -> None:
        import pyarrow as pa

        table = pa.Table.from_batches(self._pending, schema=self._schema)
        self._writer.write_table(table.slice(0, count), row_group_size=count)
        self._pending = table.slice(count).to_batches()
        self._held -= count

    def close(self) -> None:
        if self._held:
            self._flush(self._held)
        self._writer.close()


def writer_for(fmt: str, stream: IO[bytes]) -> Writer:
    if fmt == "jsonl":
        return JsonlWriter(stream)
    if fmt == "parquet":
        return ParquetWriter(stream, row_group=ROW_GROUP)  # read now, so a test can lower it
    raise InvalidInput(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[IO[bytes]]:
    """A temporary file beside ``target``, renamed over it when the block ends without an
    error and removed when it raises: readers see the old file or the whole new one."""
    folder = target.parent
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as open() would make it, not mkstemp's 0600
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


async def export(
    source: Ledger,
    batch_ids: Sequence[str],
    stream: IO[bytes],
    *,
    fmt: str,
    vectors: bool = False,
    model: str | None = None,
    page: int = PAGE,
) -> Exported:
    """Write every chunk of the batches to ``stream`` in ``fmt``; returns the counts."""
    if fmt == "parquet":
        require_pyarrow()
    writer = writer_for(fmt, stream)
    done = Exported()
    for batch_id in batch_ids:
        async for rows in chunk_pages(source, [batch_id], vectors=vectors, model=model, page=page):
            writer.write(rows)
            done.chunks += len(rows)
            done.with_vectors += sum(1 for r in rows if r.vectors)
        done.batches += 1
    writer.close()
    return done
