"""Helpers for the pipeline tests: ledgers with a real clock, batches run to completion,
and SQL checks of the chunk index invariants."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from ledger.app import Ledger
from ledger.model import BatchSpec, SourceSpec, SubmitResult
from ledger.worker.runtime import Worker
from ledger.worker.stats import WorkerStats
from tests.conftest import settings_for, sql

MEMORY_LIMIT_MB = 1024  # the bad corpus's PDF bomb must end as too_large under it


def pipeline_settings(url: str, home: Path, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "home": home,
        "process_workers": 2,
        "task_memory_limit_mb": MEMORY_LIMIT_MB,
        "task_timeout_seconds": 60.0,
        "poll_seconds": 0.05,
        "commit_interval_seconds": 0.01,
        "backoff_base_seconds": 0.05,
        "concurrency": 8,
    }
    values.update(overrides)
    return settings_for(url, **values)


def source_specs(paths: Iterable[str | Path]) -> list[SourceSpec]:
    """What a scan of the folder records at submit: size and mtime of files that exist."""
    specs = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            specs.append(SourceSpec(str(path)))
            continue
        specs.append(SourceSpec(str(path), size=st.st_size, mtime_ns=st.st_mtime_ns))
    return specs


async def run_batch(
    ledger: Ledger, spec: BatchSpec, paths: Iterable[str | Path]
) -> tuple[SubmitResult, WorkerStats]:
    """Submit and work the batch until nothing is left to do."""
    submitted = await ledger.queue.submit(spec, source_specs(paths))
    worker = Worker(ledger, batch_ids=[submitted.batch.id])
    stats = await worker.run(until_complete=True)
    return submitted, stats


def sync_url_of(url: str) -> str:
    """The same database for the plain synchronous ``sql()`` helper."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.set(drivername="sqlite"))
    return parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def check_index_invariants(url: str) -> dict[str, int]:
    """SQL checks that hold whatever happened (``url``: the async URL):

    - a done document that holds its source's chunks (not superseded) has exactly
      ``result.chunks`` of them, numbered 0..n-1;
    - a superseded document, and one that never finished done, has none;
    - no (document, ordinal) twice; on SQLite the FTS index has exactly one row per chunk
      and passes its integrity check.
    """
    url = sync_url_of(url)
    docs = sql(url, "SELECT id, status, result, superseded_by FROM documents")
    ever_done = {r[0] for r in sql(url, "SELECT document_id FROM attempts WHERE outcome = 'done'")}
    per_doc = {
        row[0]: (row[1], row[2], row[3])
        for row in sql(
            url,
            "SELECT document_id, count(*), min(ordinal), max(ordinal) FROM chunks"
            " GROUP BY document_id",
        )
    }
    for doc_id, status, result, superseded_by in docs:
        have = per_doc.get(doc_id)
        if status == "done" and superseded_by is None:
            expected = _json(result)["chunks"]
            # An archive holds no text of its own (its members are documents).
            want = (expected, 0, expected - 1) if expected else None
            assert have == want, (doc_id, have, expected)
        elif superseded_by is not None or doc_id not in ever_done:
            assert have is None, (doc_id, status, superseded_by, have)
    duplicates = sql(
        url,
        "SELECT document_id, ordinal FROM chunks GROUP BY document_id, ordinal HAVING count(*) > 1",
    )
    assert duplicates == []
    total = sql(url, "SELECT count(*) FROM chunks")[0][0]
    if url.startswith("sqlite"):
        assert sql(url, "SELECT count(*) FROM chunks_fts_docsize")[0][0] == total
        sql(url, "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)")
    return {"documents": len(docs), "chunks": total}
