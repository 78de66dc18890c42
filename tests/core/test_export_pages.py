"""The exporter holds one page at a time, on SQLite and PostgreSQL: 50,000 chunks exported
with a page of 100 are read in 500 bounded reads, each written out before the next read."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from ledger.core.chunk_reads import ChunkRecord
from ledger.core.ledger import Ledger
from ledger.export import export
from ledger.records import BatchSpec, SourceSpec
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


async def test_export_reads_and_writes_one_page_at_a_time(
    ledger: Ledger, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ledger.submit(BatchSpec(id="big"), [SourceSpec("/data/big.txt")])
    url = sync_url_of(db_url)
    (document_id,) = sql(url, "SELECT id FROM documents WHERE batch_id = 'big'")[0]
    sql(
        url,
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :last) "
        "INSERT INTO chunks (document_id, batch_id, ordinal, text, char_start, char_end, "
        "page, created_at) "
        "SELECT :d, 'big', i, 'chunk ' || i, i * 10, i * 10 + 9, NULL, CURRENT_TIMESTAMP FROM n",
        d=document_id,
        last=CHUNKS - 1,
    )

    log: list[tuple[str, int]] = []
    read = ledger.batch_chunks

    async def logged_read(batch_id: str, **kwargs: Any) -> list[ChunkRecord]:
        rows = await read(batch_id, **kwargs)
        log.append(("read", len(rows)))
        return rows

    monkeypatch.setattr(ledger, "batch_chunks", logged_read)
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
