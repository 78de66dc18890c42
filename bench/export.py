"""Export: ``ledger export`` of a one-million-chunk batch, MB/s and peak memory.

Run: python bench/export.py [--chunks 1000000] [--per-document 10] [--dimension 384]

Fixture: a migrated SQLite ledger whose batch is created through the core; its done
documents, their chunks (about 500 characters each, through the real full-text triggers)
and one ``--dimension`` vector a chunk are written with plain bulk SQL into the real schema,
which takes a minute or two at a million chunks where running a worker would take hours. A
second batch with a tenth of the chunks shows whether memory grows with the batch.

Each export runs in a fresh child process: the real ``ledger export`` command line (JSON
Lines and Parquet, each without and with ``--vectors``). Reported per run: seconds (child
start to exit), MB written, MB/s, chunks/s and the child's peak resident set size (its
``VmHWM``).

Floor, measured in the same run and the same way (bench/export_floor.py): a child with a
raw ``sqlite3`` SELECT of the same columns (and vectors), each row hashed as the ledger
hashes it and written with ``json.dumps`` (JSON Lines) or pyarrow's ``ParquetWriter`` in
row groups of the same size (Parquet). Peak memory is also set against an idle process
that imports the same modules.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import Report, child_env, scratch, settings_for

from ledger.app import Ledger
from ledger.db import migrate
from ledger.export import ROW_GROUP, parquet_schema
from ledger.model import BatchSpec, SourceSpec

FLOOR = Path(__file__).resolve().parent / "export_floor.py"
MODEL = "bench-384"
BIG, SMALL = "export-big", "export-small"
WORDS = (
    *("ledger", "batch", "document", "chunk", "vector", "export", "stream", "keyset"),
    *("parquet", "memory", "bounded", "page", "index", "citation", "source", "offset"),
    *("worker", "lease", "resume", "checkpoint", "status", "transaction"),
)
# What the command line and the floor import before any work: the idle process's figure.
IMPORTS = (
    "import ledger.cli, ledger.cli.export, ledger.export, ledger.app, "
    "sqlalchemy.ext.asyncio, aiosqlite, msgspec, numpy, pyarrow.parquet"
)


async def create_batches(home: Path) -> str:
    """Migrate, create the two batches through the core; the timestamp text they carry."""
    settings = settings_for(home)
    await migrate.upgrade_async(settings.url)
    async with await Ledger.open(settings) as ledger:
        for batch in (BIG, SMALL):
            await ledger.queue.submit(BatchSpec(id=batch, processor="noop"), [SourceSpec("/seed")])
    conn = sqlite3.connect(home / "ledger.db")
    try:
        stamp: str = conn.execute("SELECT created_at FROM batches LIMIT 1").fetchone()[0]
        conn.execute("DELETE FROM documents")  # the seeds: the documents are bulk-written
        conn.commit()
    finally:
        conn.close()
    return stamp


def texts(count: int, chars: int) -> list[str]:
    """A pool of distinct chunk texts of about ``chars`` characters (seeded)."""
    rng = random.Random(15)
    pool = []
    for i in range(count):
        words: list[str] = [f"t{i}"]
        while sum(len(w) + 1 for w in words) < chars:
            words.append(rng.choice(WORDS))
        pool.append(" ".join(words))
    return pool


def unit_vectors(count: int, dimension: int) -> list[bytes]:
    """Unit-length float32 vectors as stored (little-endian), seeded."""
    rng = random.Random(384)
    pool = []
    for _ in range(count):
        values = [rng.gauss(0, 1) for _ in range(dimension)]
        norm = sum(v * v for v in values) ** 0.5
        vector = array.array("f", (v / norm for v in values))
        if sys.byteorder != "little":
            vector.byteswap()
        pool.append(vector.tobytes())
    return pool


def fill(db: Path, batch: str, documents: int, per_document: int, stamp: str, args: Any) -> None:
    """Done documents, their chunks and vectors, by bulk SQL in one transaction a batch."""
    pool = texts(997, args.chars)
    vectors = unit_vectors(101, args.dimension)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO documents (batch_id, source, source_sha256, status, attempts,"
        " next_attempt_at, started_at, finished_at, result, created_at, updated_at)"
        " VALUES (?, ?, ?, 'done', 1, ?, ?, ?, '{}', ?, ?)",
        (
            (batch, f"/bench/{batch}/doc-{i:07d}.txt", f"{i:064x}", *(stamp,) * 5)
            for i in range(documents)
        ),
    )
    first = conn.execute("SELECT min(id) FROM documents WHERE batch_id = ?", (batch,)).fetchone()[0]

    def chunk_rows() -> Iterator[tuple[Any, ...]]:
        n = 0
        for d in range(documents):
            offset = 0
            for ordinal in range(per_document):
                text = pool[n % len(pool)]
                yield first + d, batch, ordinal, text, offset, offset + len(text), stamp
                offset += len(text)
                n += 1

    before = conn.execute("SELECT coalesce(max(id), 0) FROM chunks").fetchone()[0]
    conn.executemany(
        "INSERT INTO chunks (document_id, batch_id, ordinal, text, char_start, char_end,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        chunk_rows(),
    )
    after = conn.execute("SELECT max(id) FROM chunks").fetchone()[0]
    conn.executemany(
        "INSERT INTO chunk_vectors (chunk_id, model, dimension, vector, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (
            (c, MODEL, args.dimension, vectors[c % len(vectors)], stamp)
            for c in range(before + 1, after + 1)
        ),
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def build(home: Path, args: Any) -> None:
    stamp = asyncio.run(create_batches(home))
    documents = args.chunks // args.per_document
    fill(home / "ledger.db", BIG, documents, args.per_document, stamp, args)
    fill(home / "ledger.db", SMALL, max(1, documents // 10), args.per_document, stamp, args)


# --------------------------------------------------------------------------- measuring


def measure(argv: list[str], peak: Path, **env: str) -> tuple[float, float]:
    """Run a child to its end: (seconds, its peak RSS in MB).

    The peak is the child's own ``VmHWM``, written to ``peak`` as it exits: the rusage
    figure ``wait4`` gives would include this (larger) parent's, which a child inherits
    until its ``exec``."""
    started = time.perf_counter()
    code = subprocess.call(argv, env=child_env(**env), stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{' '.join(argv[:4])}... failed with exit {code}")
    return elapsed, int(peak.read_text()) / 1024


def python_argv(code: str, peak: Path, *args: str) -> list[str]:
    """``python -c code args``, writing the process's peak RSS (kB) to ``peak`` at exit."""
    record = (
        "\nimport atexit\n"
        "def _peak():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        f"            open({str(peak)!r}, 'w').write(line.split()[1])\n"
        "atexit.register(_peak)\n"
    )
    return [sys.executable, "-c", record + code, *args]


def ledger_argv(batch: str, fmt: str, vectors: bool, out: Path, peak: Path) -> list[str]:
    """The ``ledger`` command line itself (its console script calls the same ``main``)."""
    run = "import sys\nfrom ledger.cli import main\nsys.argv[0] = 'ledger'\nmain()"
    flags = ["--vectors"] if vectors else []
    return python_argv(run, peak, "export", batch, "--format", fmt, *flags, "-o", str(out))


def floor_argv(db: Path, batch: str, fmt: str, vectors: bool, out: Path, peak: Path) -> list[str]:
    """The floor (bench/export_floor.py) in a child that imports nothing of the ledger."""
    flag = "vectors" if vectors else "text"
    schema = db.parent / "schema.arrow"
    schema.write_bytes(parquet_schema().serialize().to_pybytes())
    run = f"import runpy\nrunpy.run_path({str(FLOOR)!r}, run_name='__main__')"
    args = (fmt, flag, str(db), batch, MODEL, str(schema), str(ROW_GROUP), str(out))
    return python_argv(run, peak, *args)


def count_lines(path: Path) -> int:
    with path.open("rb") as stream:
        return sum(block.count(b"\n") for block in iter(lambda: stream.read(1 << 20), b""))


def count_rows(path: Path, fmt: str) -> int:
    if fmt == "jsonl":
        return count_lines(path)
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--per-document", type=int, default=10)
    parser.add_argument("--chars", type=int, default=500)
    parser.add_argument("--dimension", type=int, default=384)
    args = parser.parse_args()
    if args.chunks < args.per_document:
        parser.error("--chunks must be at least --per-document")
    chunks = args.chunks // args.per_document * args.per_document
    report = Report("export", vars(args))
    with scratch("export") as home:
        started = time.perf_counter()
        build(home, args)
        db = home / "ledger.db"
        report.note(
            f"fixture built in {time.perf_counter() - started:.0f} s "
            f"(database {db.stat().st_size / 1e6:,.0f} MB)"
        )
        peak = home / "peak"
        _idle_s, idle = measure(python_argv(IMPORTS, peak), peak)
        rows: list[list[Any]] = []
        runs = [("jsonl", False), ("jsonl", True), ("parquet", False), ("parquet", True)]
        for fmt, vectors in runs:
            label = f"{fmt}{' + vectors' if vectors else ''}"
            figures = {}
            for who, argv in (
                ("ledger", ledger_argv(BIG, fmt, vectors, home / f"ledger.{fmt}", peak)),
                ("floor", floor_argv(db, BIG, fmt, vectors, home / f"floor.{fmt}", peak)),
            ):
                out = home / f"{who}.{fmt}"
                seconds, rss = measure(argv, peak, LEDGER_HOME=str(home))
                if count_rows(out, fmt) != chunks:
                    raise SystemExit(f"{who} {label}: {count_rows(out, fmt)} rows, not {chunks}")
                figures[who] = (seconds, out.stat().st_size / 1e6, rss)
                out.unlink()
            (s, mb, rss), (fs, fmb, frss) = figures["ledger"], figures["floor"]
            rows.append(
                [label, s, mb, mb / s, chunks / s, rss, fs, fmb / fs, frss, s / fs, rss / frss]
            )
        report.section(
            f"one batch of {chunks:,} chunks ({args.per_document} a document, "
            f"~{args.chars} characters, {args.dimension}-dimension vectors), SQLite, "
            f"one fresh process per run",
            [
                "format",
                "ledger s",
                "MB written",
                "MB/s",
                "chunks/s",
                "peak RSS (MB)",
                "floor s",
                "floor MB/s",
                "floor peak RSS (MB)",
                "time / floor",
                "RSS / floor",
            ],
            rows,
        )
        small = chunks // 10 // args.per_document * args.per_document or args.per_document
        growth = []
        for fmt, vectors in runs:
            out = home / f"small.{fmt}"
            argv = ledger_argv(SMALL, fmt, vectors, out, peak)
            _s, rss_small = measure(argv, peak, LEDGER_HOME=str(home))
            out.unlink()
            big_rss = next(r[5] for r in rows if r[0] == f"{fmt}{' + vectors' if vectors else ''}")
            growth.append([f"{fmt}{' + vectors' if vectors else ''}", rss_small, big_rss, idle])
        report.section(
            f"peak RSS (MB) of ledger export: a batch of {small:,} chunks, of {chunks:,}, "
            f"and an idle process importing the same modules",
            ["format", f"{small:,} chunks", f"{chunks:,} chunks", "idle process"],
            growth,
        )
    report.write()


if __name__ == "__main__":
    main()
