"""The exporter holds one page at a time, on SQLite and PostgreSQL: 50,000 chunks exported
with a page of 100 are read in 500 bounded reads, each written out before the next read;
to Parquet, each row group is written out before the next page is read."""

from __future__ import annotations

import io
import itertools
import json
from typing import Any

import pyarrow.parquet as pq
import pytest

from ledger import export as exporting
from ledger.app import Ledger
from ledger.export import export
from ledger.index.chunk_reads import ChunkRecord
from ledger.model import BatchSpec, SourceSpec
from tests.conftest import sql
from tests.pipeline.support import sync_url_of

CHUNKS = 50_000
PAGE = 100


class CountingStream:
    """A binary stream that keeps no data: it logs each write and checks the rows in it."""

    def __init__(self, log: list[tuple[str, int]]) -> None:
        self.log = log
        self.last_id = 0
        self.rows = 0

    def write(self, data: bytes) -> int:
        lines = data.splitlines()
        for line in lines:
            row: dict[str, Any] = json.loads(line)
            assert row["chunk_id"] > self.last_id  # in id order, none twice
            self.last_id = row["chunk_id"]
            assert row["source_name"] == "/data/big.txt" and row["text"].startswith("chunk ")
        self.rows += len(lines)
        self.log.append(("write", len(lines)))
        return len(data)

    def flush(self) -> None:
        pass


async def batch_of_chunks(ledger: Ledger, db_url: str, count: int) -> None:
    """Batch ``big``: one document with ``count`` chunks, written by SQL in one statement."""
    await ledger.queue.submit(BatchSpec(id="big"), [SourceSpec("/data/big.txt")])
    url = sync_url_of(db_url)
    (document_id,) = sql(url, "SELECT id FROM documents WHERE batch_id = 'big'")[0]
    sql(
        url,
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :last) "
        "INSERT INTO chunks (document_id, batch_id, ordinal, text, char_start, char_end, "
        "page, created_at) "
        "SELECT :d, 'big', i, 'chunk ' || i, i * 10, i * 10 + 9, NULL, CURRENT_TIMESTAMP FROM n",
        d=document_id,
        last=count - 1,
    )


async def test_export_reads_and_writes_one_page_at_a_time(
    ledger: Ledger, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await batch_of_chunks(ledger, db_url, CHUNKS)

    log: list[tuple[str, int]] = []
    read = ledger.index.batch_chunks

    async def logged_read(batch_id: str, **kwargs: Any) -> list[ChunkRecord]:
        rows = await read(batch_id, **kwargs)
        log.append(("read", len(rows)))
        return rows

    monkeypatch.setattr(ledger.index, "batch_chunks", logged_read)
    stream = CountingStream(log)
    done = await export(
        ledger,
        ["big"],
        stream,  # type: ignore[arg-type]
        fmt="jsonl",
        page=PAGE,
    )

    assert (done.chunks, done.batches, stream.rows) == (CHUNKS, 1, CHUNKS)
    reads = [n for kind, n in log if kind == "read"]
    assert max(reads) == PAGE and sum(reads) == CHUNKS
    assert len(reads) == CHUNKS // PAGE + 1  # the last read finds nothing more
    # Every page is written before the next is read: never more than one page held.
    for (kind, n), (next_kind, next_n) in itertools.pairwise(log):
        if kind == "read" and n:
            assert (next_kind, next_n) == ("write", n)
        if kind == "write":
            assert next_kind == "read"


class LoggingFile(io.BytesIO):
    """A file that logs how many bytes each write brings (pyarrow writes to it as it goes)."""

    def __init__(self, log: list[tuple[str, int]]) -> None:
        super().__init__()
        self.log = log

    def write(self, data: Any) -> int:
        self.log.append(("write", len(data)))
        return super().write(data)


async def test_parquet_export_writes_each_row_group_before_reading_on(
    ledger: Ledger, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks, row_group = 5_000, 1_000
    await batch_of_chunks(ledger, db_url, chunks)
    log: list[tuple[str, int]] = []
    read = ledger.index.batch_chunks
    held: list[int] = []
    real_write = exporting.ParquetWriter.write

    async def logged_read(batch_id: str, **kwargs: Any) -> list[ChunkRecord]:
        rows = await read(batch_id, **kwargs)
        log.append(("read", len(rows)))
        return rows

    def watched_write(self: exporting.ParquetWriter, rows: list[ChunkRecord]) -> None:
        real_write(self, rows)
        held.append(self.held)

    monkeypatch.setattr(ledger.index, "batch_chunks", logged_read)
    monkeypatch.setattr(exporting, "ROW_GROUP", row_group)
    monkeypatch.setattr(exporting.ParquetWriter, "write", watched_write)
    stream = LoggingFile(log)
    done = await export(ledger, ["big"], stream, fmt="parquet", page=PAGE)

    assert done.chunks == chunks
    table = pq.ParquetFile(io.BytesIO(stream.getvalue()))
    assert table.metadata.num_rows == chunks
    groups = [table.metadata.row_group(i).num_rows for i in range(table.metadata.num_row_groups)]
    assert groups == [row_group] * (chunks // row_group)
    ids = [int(i) for i in table.read().column("chunk_id").to_pylist() if i is not None]
    assert ids == sorted(ids) and len(set(ids)) == chunks
    # Never a whole row group waits, and each row group reaches the file before the next
    # page is read: the bytes written keep pace with the reads, whatever the batch's size.
    assert max(held) < row_group
    reads = [i for i, (kind, _n) in enumerate(log) if kind == "read"]
    pages_per_group = row_group // PAGE
    for g in range(1, chunks // row_group + 1):
        last_page, next_read = reads[g * pages_per_group - 1], reads[g * pages_per_group]
        assert any(kind == "write" for kind, _n in log[last_page + 1 : next_read]), g
