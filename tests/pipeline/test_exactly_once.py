"""Exactly-once chunks: a worker process killed with SIGKILL in the middle of a batch, twice,
leaves every done document with exactly its chunks and nothing else in the index."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec
from ledger.states import DocumentStatus
from tests.conftest import sql
from tests.ingest import fixtures as fx
from tests.pipeline.support import check_index_invariants, source_specs, sync_url_of

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parents[2]


def start_worker(url: str, home: Path, batch_id: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LEDGER_LEASE_SECONDS": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.ingest_worker", url, str(home), batch_id],
        cwd=ROOT,
        env=env,
    )


def finished(url: str) -> int:
    return int(sql(url, "SELECT count(*) FROM documents WHERE status IN ('done', 'skipped')")[0][0])


def kill_when(proc: subprocess.Popen[bytes], url: str, at_least: int, timeout: float) -> None:
    kill_once(proc, lambda: finished(url) >= at_least, timeout)


def kill_once(proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float) -> None:
    """SIGKILL the worker as soon as ``ready()`` says so."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "the worker ended before it could be killed"
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


async def test_sigkill_during_a_batch_leaves_exact_chunks(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    corpus = list(fx.make_good_corpus(tmp_path / "docs", 100))
    # A copy: skipped as a duplicate if the original is done when it starts, else indexed
    # too (dedup is decided when a document starts; it is a source of its own).
    copy = tmp_path / "docs" / "copy_of_0002.html"
    shutil.copyfile(corpus[2], copy)
    await led.queue.submit(BatchSpec(id="crash", processor="ingest"), source_specs([*corpus, copy]))
    url = sync_url_of(db_url)
    home = tmp_path / "worker-home"

    for at_least in (15, 50):
        proc = start_worker(db_url, home, "crash")
        kill_when(proc, url, at_least, timeout=60)
        check_index_invariants(db_url)  # holds at any moment, crashed or not
    left_by_kills = set(os.listdir(home / "spool"))
    proc = start_worker(db_url, home, "crash")
    assert proc.wait(timeout=90) == 0

    batch = await led.reads.batch("crash")
    assert batch.complete
    done, skipped = batch.counts[DocumentStatus.DONE], batch.counts[DocumentStatus.SKIPPED]
    assert (done, skipped) in ((100, 1), (101, 0))
    stats = check_index_invariants(db_url)
    assert stats["chunks"] == sum(
        r[0] for r in sql(url, "SELECT count(*) FROM chunks GROUP BY document_id")
    )
    # The kills hit documents in flight: their leases ran out and they were done again.
    expired = sql(url, "SELECT count(*) FROM attempts WHERE outcome = 'lease_expired'")[0][0]
    assert expired >= 1
    # Each done document's attempts: exactly one ended done.
    assert (
        sql(
            url,
            "SELECT document_id FROM attempts WHERE outcome = 'done'"
            " GROUP BY document_id HAVING count(*) > 1",
        )
        == []
    )
    # The worker that finished removed every spool it made; only the killed ones left some
    # (removed by the sweep at start once they are old).
    assert set(os.listdir(home / "spool")) <= left_by_kills
