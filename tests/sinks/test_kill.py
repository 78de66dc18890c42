"""SIGKILL a real sink process between the store's write and the ledger's commit, twice,
then resume: the stores hold exactly the ledger's points (no duplicate, no orphan)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec
from ledger.sinks.stage import SinkStage
from tests.conftest import sql
from tests.embed.server import EmbeddingServer
from tests.embed.support import make_corpus
from tests.pipeline.support import run_batch, sync_url_of
from tests.sinks.support import KINDS, assert_mirrored, sink_profiles, stored_points
from tests.sinks.test_mirror import drain, options

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 2


def crash_once(url: str, stores: Path, report: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LEDGER_SINKS": sink_profiles(stores),
        "LEDGER_SINK_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tests.helpers.sink_crash", url, str(report)],
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.returncode
    found: dict[str, Any] = json.loads(report.read_text())
    return found


async def test_sigkill_between_store_write_and_commit_leaves_no_duplicate_nor_orphan(
    led: Ledger, sqlite_url: str, tmp_path: Path, stores: Path, server: EmbeddingServer
) -> None:
    corpus = make_corpus(tmp_path / "docs", per_topic=1)
    url = sync_url_of(sqlite_url)
    await run_batch(led, BatchSpec(id="v1", options=options(server, *KINDS)), corpus)
    await drain(led)
    for path in corpus[:3]:  # new versions: the crash lands on replacing points
        path.write_text(path.read_text() + "\nA postscript about harbour tides.\n")
    await run_batch(led, BatchSpec(id="v2", options=options(server, *KINDS)), corpus)

    killed: set[int] = set()
    for n in range(2):
        if n:
            # The first process claimed every row: the second finds them claimable only
            # once that dead process's leases have run out (its start-up alone once took
            # long enough on a slow machine, and not on a fast one).
            await asyncio.sleep(LEASE_SECONDS + 0.5)
        report = tmp_path / f"kill-{n}.json"
        crashed = crash_once(sqlite_url, stores, report)
        assert crashed["errors"] == [] and crashed["rows"], crashed
        for row_id, points in zip(crashed["rows"], crashed["points"], strict=True):
            row = sql(
                url,
                "SELECT status, lease_token, sink, source_key FROM sink_rows WHERE id = :i",
                i=row_id,
            )[0]
            # The store is ahead of the ledger: the row is still pending under the dead
            # lease, while the store holds this version's points and no longer the old ones.
            assert row.status == "pending" and row.lease_token is not None
            held = [p for _, p in stored_points(row.sink, stores).values()]
            of_source = [p for p in held if p["source_key"] == row.source_key]
            assert {p["batch_id"] for p in of_source} == {"v2"}
            assert len(of_source) == points > 0
            killed.add(row_id)

    resume = SinkStage(led)
    try:
        for _ in range(600):  # leases of the dead processes run out: then it is all written
            await resume.run_once()
            left = sql(url, "SELECT count(*) FROM sink_rows WHERE status <> 'done'")[0][0]
            if left == 0:
                break
            await asyncio.sleep(0.1)
    finally:
        await resume.close()
    assert sql(url, "SELECT count(*) FROM sink_rows WHERE status <> 'done'")[0][0] == 0
    # The killed attempts recorded nothing (a row killed twice, its lease having run out
    # before the second process started, is the same): the replay recorded the one attempt.
    for row_id in killed:
        assert sql(url, "SELECT attempts FROM sink_rows WHERE id = :i", i=row_id)[0][0] == 1
    chunks = sql(url, "SELECT count(*) FROM chunks")[0][0]
    for kind in KINDS:
        assert assert_mirrored(kind, stores, url) == chunks
