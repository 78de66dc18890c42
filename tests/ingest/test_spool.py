"""Chunk spool files: round trip, batches, damage detection, cleanup."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ledger.processors.ingest.chunking import ChunkRecord
from ledger.processors.ingest.spool import (
    SpoolCorrupt,
    SpoolWriter,
    iter_spool,
    remove_stale_partials,
)


def records(n: int) -> list[ChunkRecord]:
    return [
        ChunkRecord(i, f"chunk {i} ünïcödé ☃ " * (i % 7 + 1), i * 10, i * 10 + 9, i // 3 or None)
        for i in range(n)
    ]


def test_round_trip_in_batches(tmp_path: Path) -> None:
    path = str(tmp_path / "a.spool")
    with SpoolWriter(path) as writer:
        for record in records(2500):
            writer.write(record)
    assert not os.path.exists(path + ".partial")
    batches = list(iter_spool(path, batch_size=1000))
    assert [len(b) for b in batches] == [1000, 1000, 500]
    assert [r for b in batches for r in b] == records(2500)


def test_empty_spool_reads_as_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "empty.spool")
    with SpoolWriter(path):
        pass
    assert list(iter_spool(path)) == []


def test_an_exception_leaves_no_file(tmp_path: Path) -> None:
    def write_and_fail(path: str) -> None:
        with SpoolWriter(path) as writer:
            writer.write(records(1)[0])
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_and_fail(str(tmp_path / "b.spool"))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("cut", [3, 12, -9, -3])
def test_damage_is_detected(tmp_path: Path, cut: int) -> None:
    path = str(tmp_path / "c.spool")
    with SpoolWriter(path) as writer:
        for record in records(20):
            writer.write(record)
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[:cut])
    with pytest.raises(SpoolCorrupt):
        list(iter_spool(path))


def test_wrong_count_is_detected(tmp_path: Path) -> None:
    path = str(tmp_path / "d.spool")
    with SpoolWriter(path) as writer:
        for record in records(5):
            writer.write(record)
    data = bytearray(Path(path).read_bytes())
    data[-8] += 1
    Path(path).write_bytes(bytes(data))
    with pytest.raises(SpoolCorrupt, match="count"):
        list(iter_spool(path))


def test_remove_stale_partials(tmp_path: Path) -> None:
    old = tmp_path / "old.spool.partial"
    new = tmp_path / "new.spool.partial"
    done = tmp_path / "done.spool"
    for path in (old, new, done):
        path.write_bytes(b"x")
    past = time.time() - 3600
    os.utime(old, (past, past))
    os.utime(done, (past, past))
    assert remove_stale_partials(str(tmp_path), older_than=600) == 1
    assert sorted(os.listdir(tmp_path)) == ["done.spool", "new.spool.partial"]
