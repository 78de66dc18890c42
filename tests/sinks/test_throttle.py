"""Backpressure from a sink's store: a real ``ledger.sinks`` entry-point plugin (an installed
distribution on the path, points kept in a JSON file) that answers "throttled, retry after
1 s" to every third write. Throttled rows come back later without spending an attempt and
the store ends up holding exactly the ledger's points; a store that throttles every write
fails its rows after LEDGER_THROTTLE_LIMIT free throttles and LEDGER_SINK_MAX_ATTEMPTS
charged ones, with a reason that says so."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ledger import metrics
from ledger.app import Ledger
from ledger.model import BatchSpec
from ledger.sinks.stage import SinkStage
from tests.conftest import sql
from tests.embed.support import make_corpus
from tests.pipeline.support import pipeline_settings, run_batch, sync_url_of
from tests.sinks.support import expected_points
from tests.sinks.test_plugin import PLUGIN as JSON_FILE_PLUGIN

pytestmark = pytest.mark.timeout(120)

PLUGIN = '''
from pathlib import Path

from jsonfile_sink import JsonFileSink
from ledger.backpressure import Throttled
from ledger.sinks.base import SinkError


class ThrottlingSink(JsonFileSink):
    """Points in a JSON file; every ``every``-th write is refused as throttled, with
    ``Throttled`` or a ``SinkError`` carrying ``retry_after`` (the profile's ``style``)."""

    def __init__(self, profile):
        super().__init__(profile)
        self.log = Path(profile.settings["log"])
        self.every = int(profile.settings["every"])
        self.wait = float(profile.settings["retry_after"])
        self.style = profile.settings["style"]
        self.writes = 0

    def _gate(self, what):
        self.writes += 1
        throttled = self.writes % self.every == 0
        with self.log.open("a") as log:
            log.write(("throttled " if throttled else "ok ") + what + "\\n")
        if throttled:
            message = f"throttled, retry after {self.wait:g} s"
            if self.style == "throttled":
                raise Throttled("rate_limited", message, retry_after=self.wait)
            raise SinkError(message, retry_after=self.wait)

    def upsert(self, points):
        self._gate(f"upsert {len(points)}")
        super().upsert(points)

    def delete(self, source_key, *, keep_document=None, keep=0):
        self._gate("delete")
        super().delete(source_key, keep_document=keep_document, keep=keep)


def build(profile):
    return ThrottlingSink(profile)
'''

WRITE_SIZE = 24  # points per write at full pace: 3 at the floor (1/8), a whole small document


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution declaring the ``throttling`` kind (a JSON file store, the
    one the entry-point sink test installs, that throttles)."""
    site = tmp_path / "site"
    info = site / "throttling_sink-1.0.dist-info"
    info.mkdir(parents=True)
    (site / "jsonfile_sink.py").write_text(JSON_FILE_PLUGIN)
    (site / "throttling_sink.py").write_text(PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: throttling-sink\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[ledger.sinks]\nthrottling = throttling_sink:build\n")
    monkeypatch.syspath_prepend(str(site))
    return site


def profile(folder: Path, name: str, **settings: Any) -> dict[str, Any]:
    return {
        "kind": "throttling",
        "file": str(folder / f"{name}.json"),
        "log": str(folder / f"{name}.log"),
        "requires_vectors": False,
        "write_size": WRITE_SIZE,
        **settings,
    }


@contextlib.asynccontextmanager
async def throttling_ledger(url: str, folder: Path, **overrides: Any) -> AsyncIterator[Ledger]:
    """A ledger with both throttling sinks and these settings."""
    sinks = {
        "third": profile(folder, "third", every=3, retry_after=1.0, style="throttled"),
        "always": profile(folder, "always", every=1, retry_after=0.05, style="sink_error"),
    }
    settings = pipeline_settings(url, folder / "home", sinks=json.dumps(sinks), **overrides)
    ledger = await Ledger.open(settings)
    try:
        yield ledger
    finally:
        await ledger.close()


async def work_until_settled(stage: SinkStage, url: str, sink: str) -> list[Any]:
    """Run the stage's rounds until no row of ``sink`` is pending (throttled rows are due
    again after their wait); returns its rows."""
    for _ in range(600):
        await stage.run_once()
        found = sql(
            url,
            "SELECT status, attempts, throttles, last_error FROM sink_rows WHERE sink = :s",
            s=sink,
        )
        if found and all(r.status != "pending" for r in found):
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"rows of {sink!r} still pending: {found}")


async def throttled_run(led: Ledger, url: str) -> tuple[list[Any], int]:
    """The rounds of one stage until the sink ``third`` is settled, checking the rows
    after the first; returns the rows and the write size the stage ended with."""
    stage = SinkStage(led)
    try:
        await stage.run_once()
        first = sql(url, "SELECT status, attempts, throttles, last_error FROM sink_rows")
        waiting = [r for r in first if r.status == "pending"]
        assert waiting and all(r.attempts == 0 and r.throttles == 1 for r in waiting)
        assert all(r.last_error.startswith("throttled: ") for r in waiting)
        assert "retry after 1 s" in waiting[0].last_error
        assert [r for r in first if r.status == "done"]  # rows written before it stay done
        settled = await work_until_settled(stage, url, "third")
        return settled, metrics.stage_limits()[("sink:third", "throttling")]
    finally:
        await stage.close()


@pytest.mark.usefixtures("plugin_path")
async def test_throttles_reschedule_rows_without_spending_attempts(
    db_url: str, tmp_path: Path
) -> None:
    url = sync_url_of(db_url)
    corpus = make_corpus(tmp_path / "docs", per_topic=16)
    registry = metrics.registry()  # the process's metrics, recorded from now on
    labels = {"sink": "third"}
    counted = registry.get_sample_value("ledger_sink_throttles_total", labels) or 0.0
    async with throttling_ledger(db_url, tmp_path) as led:
        await run_batch(led, BatchSpec(id="t", options={"sinks": ["third"]}), corpus)
        chunks = sql(url, "SELECT count(*) FROM chunks")[0][0]
        assert chunks > 3 * WRITE_SIZE  # so the first round meets its third write
        settled, pace = await throttled_run(led, url)
        assert {r.status for r in settled} == {"done"}
        # New versions of some sources: their old points go by deletes, throttled too.
        for path in corpus[:10]:
            path.write_text(f"A new text about {path.stem}: lanterns, rivers and kites.\n")
        await run_batch(led, BatchSpec(id="t2", options={"sinks": ["third"]}), corpus[:10])
        stage = SinkStage(led)
        try:
            again = await work_until_settled(stage, url, "third")
        finally:
            await stage.close()
    assert {(r.status, r.attempts, r.throttles) for r in again} == {("done", 1, 0)}
    # One attempt each, the one that wrote it: no throttle was charged.
    assert {(r.attempts, r.throttles, r.last_error) for r in settled} == {(1, 0, None)}
    log = (tmp_path / "third.log").read_text().splitlines()
    assert sum(line.startswith("throttled") for line in log) >= 2
    assert "throttled delete" in log and "ok delete" in log
    throttled_rows = registry.get_sample_value("ledger_sink_throttles_total", labels) or 0.0
    assert throttled_rows - counted >= sum(line.startswith("throttled") for line in log)
    # The first throttle halved the write size; with two successes between throttles it
    # never gets the four in a row it needs to grow past half again.
    sizes = [int(line.split()[-1]) for line in log if " upsert " in line]
    first_cut = next(i for i, line in enumerate(log) if line.startswith("throttled"))
    assert sizes[0] == WRITE_SIZE and first_cut == 2
    assert max(sizes[first_cut + 1 :]) <= WRITE_SIZE // 2
    assert 1 <= pace <= WRITE_SIZE
    held = json.loads((tmp_path / "third.json").read_text())
    wanted = expected_points(url, "third")
    assert len(wanted) == chunks and set(held) == set(wanted)  # the old versions' are gone
    for ident, (_, payload) in wanted.items():
        assert held[ident]["payload"] == payload
    batch = sql(url, "SELECT state FROM batches WHERE id = 't'")[0]
    assert batch.state == "active"


@pytest.mark.usefixtures("plugin_path")
async def test_a_store_that_always_throttles_fails_its_rows_after_the_attempts(
    sqlite_url: str, tmp_path: Path
) -> None:
    url = sync_url_of(sqlite_url)
    corpus = make_corpus(tmp_path / "docs", per_topic=1)[:2]
    limits = {"throttle_limit": 2, "sink_max_attempts": 2}
    async with throttling_ledger(sqlite_url, tmp_path, **limits) as led:
        await run_batch(led, BatchSpec(id="a", options={"sinks": ["always"]}), corpus)
        stage = SinkStage(led)
        try:
            settled = await work_until_settled(stage, url, "always")
        finally:
            await stage.close()
    # Two free throttles (LEDGER_THROTTLE_LIMIT=2), then two charged ones
    # (LEDGER_SINK_MAX_ATTEMPTS=2): failed, the reason naming the limit.
    for row in settled:
        assert (row.status, row.attempts, row.throttles) == ("failed", 2, 4)
        assert "throttled, retry after 0.05 s" in row.last_error
        assert "throttled 4 times in a row" in row.last_error
        assert "LEDGER_THROTTLE_LIMIT=2" in row.last_error
    assert not (tmp_path / "always.json").exists()
    batch = sql(url, "SELECT state FROM batches WHERE id = 'a'")[0]
    assert batch.state == "active"
