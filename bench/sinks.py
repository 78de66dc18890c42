"""Sinks: chunks per second through the ledger's sink stage into LanceDB and Qdrant (local
mode), against each store's own bulk insert of the same rows in the same run.

Run: python bench/sinks.py [--docs 1000] [--chunks 10] [--dim 384]

1. Builds a SQLite ledger with one batch of ``--docs`` done documents of ``--chunks``
   chunks each, a unit-length float32 vector of ``--dim`` per chunk, and the sink rows a
   batch naming the sink owes (raw sqlite3 inserts: building is not what is measured);
   one such ledger per sink.
2. Ledger: ``SinkStage.run_once()`` writes every row into a fresh LanceDB folder or a
   fresh Qdrant local-mode folder (reads of the chunks, upserts by stable id, the fenced
   commits of the outcomes).
3. Floor: the same points (ids, vectors, payloads, read from the same file beforehand) put
   into a fresh table/collection with the store's own bulk call: LanceDB ``create_table``
   with all rows at once, Qdrant ``upload_points`` in batches of 1,000.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import struct
import time
from pathlib import Path
from typing import Any

from harness import Report, raw_connect, scratch, settings_for

from ledger.app import Ledger
from ledger.db import migrate
from ledger.sinks.base import PAYLOAD_FIELDS, point_id
from ledger.sinks.stage import SinkStage

NOW = "2026-01-01 12:00:00.000000+00:00"
WORDS = ["comet", "orbit", "nebula", "flour", "oven", "harbour", "tide", "rook", "pawn"]


def unit_vector(rng: random.Random, dim: int) -> bytes:
    values = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return struct.pack(f"<{dim}f", *(v / norm for v in values))


def build(path: Path, docs: int, chunks: int, dim: int, sinks: list[str]) -> None:
    rng = random.Random(7)
    conn = raw_connect(path)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO batches (id, processor, options, max_attempts, created_at, updated_at)"
        " VALUES ('bench', 'ingest', ?, 3, ?, ?)",
        (json.dumps({"sinks": sinks}), NOW, NOW),
    )
    for i in range(docs):
        source = f"/corpus/doc-{i}.txt"
        sha = hashlib.sha256(source.encode()).hexdigest()
        conn.execute(
            "INSERT INTO documents (id, batch_id, source, source_sha256, status, attempts,"
            " next_attempt_at, finished_at, result, created_at, updated_at)"
            " VALUES (?, 'bench', ?, ?, 'done', 1, ?, ?, '{}', ?, ?)",
            (i + 1, source, sha, NOW, NOW, NOW, NOW),
        )
        for o in range(chunks):
            text = " ".join(rng.choice(WORDS) for _ in range(120))
            cursor = conn.execute(
                "INSERT INTO chunks (document_id, batch_id, ordinal, text, char_start, char_end,"
                " created_at) VALUES (?, 'bench', ?, ?, ?, ?, ?)",
                (i + 1, o, text, o * 800, o * 800 + len(text), NOW),
            )
            conn.execute(
                "INSERT INTO chunk_vectors (chunk_id, model, dimension, vector, created_at)"
                " VALUES (?, 'bench', ?, ?, ?)",
                (cursor.lastrowid, dim, unit_vector(rng, dim), NOW),
            )
        key = hashlib.sha256(f"\x00{source}".encode()).hexdigest()
        for sink in sinks:
            conn.execute(
                "INSERT INTO sink_rows (sink, source_key, batch_id, document_id, sha256, status,"
                " next_attempt_at, created_at, updated_at)"
                " VALUES (?, ?, 'bench', ?, ?, 'pending', ?, ?, ?)",
                (sink, key, i + 1, sha, NOW, NOW, NOW),
            )
    conn.execute("COMMIT")
    conn.close()


def points_from_sql(path: Path) -> list[dict[str, Any]]:
    """The rows the stage writes, as plain dicts (what a bulk loader is handed)."""
    conn = raw_connect(path)
    rows = conn.execute(
        "SELECT s.source_key, d.id, d.source, d.source_sha256, c.ordinal, c.text, c.page,"
        " c.char_start, c.char_end, v.vector FROM sink_rows s"
        " JOIN documents d ON d.id = s.document_id JOIN chunks c ON c.document_id = d.id"
        " JOIN chunk_vectors v ON v.chunk_id = c.id"
    ).fetchall()
    conn.close()
    points = []
    for key, doc, source, sha, ordinal, text, page, start, end, vector in rows:
        values = list(struct.unpack(f"<{len(vector) // 4}f", vector))
        payload = dict(
            zip(
                PAYLOAD_FIELDS,
                (text, key, source, page, start, end, ordinal, sha, "bench", doc),
                strict=True,
            )
        )
        points.append({"id": point_id(key, doc, sha, ordinal), "vector": values, **payload})
    return points


def profiles(folder: Path, sink: str) -> str:
    if sink == "lance":
        return json.dumps({"lance": {"kind": "lancedb", "uri": str(folder / "lance")}})
    return json.dumps({"qdrant": {"kind": "qdrant", "path": str(folder / "qdrant")}})


def warm_imports() -> None:
    """Both measurements start with the store's library loaded (a process pays that once)."""
    import lancedb  # noqa: F401
    import qdrant_client  # noqa: F401


async def through_ledger(home: Path, sink: str, folder: Path) -> float:
    settings = settings_for(home, sinks=profiles(folder, sink))
    async with await Ledger.open(settings) as ledger:
        stage = SinkStage(ledger)
        started = time.perf_counter()
        try:
            rows = await stage.run_once()
        finally:
            await stage.close()
        elapsed = time.perf_counter() - started
        progress = await ledger.index.sink_progress(["bench"])
    assert progress["bench"][sink].done == rows, progress
    return elapsed


def bulk_lance(folder: Path, points: list[dict[str, Any]]) -> float:
    import lancedb

    db = lancedb.connect(str(folder / "lance-bulk"))
    started = time.perf_counter()
    table = db.create_table("chunks", data=points)
    elapsed = time.perf_counter() - started
    assert table.count_rows() == len(points)
    return elapsed


def bulk_qdrant(folder: Path, points: list[dict[str, Any]]) -> float:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(folder / "qdrant-bulk"))
    dim = len(points[0]["vector"])
    started = time.perf_counter()
    client.create_collection(
        "chunks", vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE)
    )
    structs = (
        models.PointStruct(
            id=p["id"], vector=p["vector"], payload={k: p[k] for k in PAYLOAD_FIELDS}
        )
        for p in points
    )
    client.upload_points("chunks", structs, batch_size=1000, wait=True)
    elapsed = time.perf_counter() - started
    assert client.count("chunks").count == len(points)
    client.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--dim", type=int, default=384)
    args = parser.parse_args()
    report = Report("sinks", vars(args))
    rows = []
    warm_imports()
    with scratch("sinks") as scratch_dir:
        for sink, bulk in (("lance", bulk_lance), ("qdrant", bulk_qdrant)):
            home = scratch_dir / sink
            home.mkdir()
            migrate.upgrade(settings_for(home).url)
            build(home / "ledger.db", args.docs, args.chunks, args.dim, [sink])
            points = points_from_sql(home / "ledger.db")
            total = len(points)
            ledger_s = asyncio.run(through_ledger(home, sink, home / "stores"))
            floor_s = bulk(home / "stores", points)
            rows.append(
                [
                    sink,
                    total,
                    round(total / ledger_s),
                    round(total / floor_s),
                    f"{floor_s / ledger_s:.0%}",
                ]
            )
    report.section(
        f"Sink throughput ({args.docs:,} documents of {args.chunks} chunks, {args.dim}-dim)",
        ["sink", "chunks", "ledger chunks/s", "bulk insert chunks/s", "ledger / bulk"],
        rows,
    )
    report.write()


if __name__ == "__main__":
    main()
