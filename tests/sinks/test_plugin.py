"""Another store through a ``ledger.sinks`` entry point (a real installed distribution on
the path: a store of points in a JSON file, no vectors), and how errors end: a kind nobody
provides fails at once with its reason, a store that cannot be reached is retried later."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec
from tests.conftest import sql
from tests.embed.server import EmbeddingServer
from tests.embed.support import embedder_options, make_corpus
from tests.helpers.server import free_port
from tests.pipeline.support import pipeline_settings, run_batch, sync_url_of
from tests.sinks.support import expected_points
from tests.sinks.test_mirror import drain

pytestmark = pytest.mark.timeout(120)

PLUGIN = """
import json
from pathlib import Path


class JsonFileSink:
    def __init__(self, profile):
        self.path = Path(profile.settings["file"])

    def _load(self):
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def upsert(self, points):
        held = self._load()
        for p in points:
            held[p.id] = {"vector": p.vector, "payload": dict(p.payload)}
        self.path.write_text(json.dumps(held))

    def delete(self, source_key, *, keep_document=None, keep=0):
        held = self._load()
        for ident, point in list(held.items()):
            payload = point["payload"]
            kept = payload["document_id"] == keep_document and payload["ordinal"] < keep
            if payload["source_key"] == source_key and not kept:
                del held[ident]
        self.path.write_text(json.dumps(held))

    def close(self):
        pass


def build(profile):
    return JsonFileSink(profile)
"""


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution declaring the ``jsonfile`` kind."""
    site = tmp_path / "site"
    (site / "jsonfile_sink-1.0.dist-info").mkdir(parents=True)
    (site / "jsonfile_sink.py").write_text(PLUGIN)
    info = site / "jsonfile_sink-1.0.dist-info"
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: jsonfile-sink\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[ledger.sinks]\njsonfile = jsonfile_sink:build\n")
    monkeypatch.syspath_prepend(str(site))
    return site


async def ledger_with(url: str, home: Path, sinks: dict[str, Any]) -> Ledger:
    return await Ledger.open(pipeline_settings(url, home, sinks=json.dumps(sinks)))


@pytest.fixture
async def plugged(
    sqlite_url: str, tmp_path: Path, plugin_path: Path
) -> AsyncIterator[tuple[Ledger, Path]]:
    store = tmp_path / "points.json"
    sinks = {
        "file": {"kind": "jsonfile", "file": str(store), "requires_vectors": False},
        "nobody": {"kind": "not-installed", "requires_vectors": False},
        "away": {"kind": "qdrant", "url": f"http://127.0.0.1:{free_port()}"},
    }
    led = await ledger_with(sqlite_url, tmp_path / "home", sinks)
    try:
        yield led, store
    finally:
        await led.close()


async def test_an_entry_point_sink_mirrors_chunks_without_vectors(
    plugged: tuple[Ledger, Path], sqlite_url: str, tmp_path: Path
) -> None:
    led, store = plugged
    corpus = make_corpus(tmp_path / "docs", per_topic=1)
    url = sync_url_of(sqlite_url)
    await run_batch(led, BatchSpec(id="p1", options={"sinks": ["file"]}), corpus)
    await drain(led)
    held = json.loads(store.read_text())
    wanted = expected_points(url, "file")
    assert set(held) == set(wanted) and wanted
    for ident, (_, payload) in wanted.items():
        assert held[ident]["vector"] is None
        assert held[ident]["payload"] == payload
    corpus[0].write_text("Entirely new words about tulips and compost.\n" * 30)
    await run_batch(led, BatchSpec(id="p2", options={"sinks": ["file"]}), corpus[:1])
    await drain(led)
    assert set(json.loads(store.read_text())) == set(expected_points(url, "file"))


async def test_a_kind_nobody_provides_fails_at_once_and_an_unreachable_store_retries(
    plugged: tuple[Ledger, Path], sqlite_url: str, tmp_path: Path, server: EmbeddingServer
) -> None:
    led, _ = plugged
    corpus = make_corpus(tmp_path / "docs", per_topic=1)[:1]
    url = sync_url_of(sqlite_url)
    await run_batch(led, BatchSpec(id="n", options={"sinks": ["nobody"]}), corpus)
    spec = BatchSpec(id="a", options={**embedder_options(server.base_url), "sinks": ["away"]})
    await run_batch(led, spec, corpus)
    await drain(led)
    rows = {
        r.sink: r
        for r in sql(
            url, "SELECT sink, status, attempts, last_error, next_attempt_at FROM sink_rows"
        )
    }
    assert rows["nobody"].status == "failed" and "no sink kind 'not-installed'" in (
        rows["nobody"].last_error
    )
    away = rows["away"]
    assert away.status == "pending" and away.attempts == 1 and away.last_error
    assert datetime.fromisoformat(str(away.next_attempt_at)).replace(tzinfo=UTC) > datetime.now(
        UTC
    )  # backed off
    assert await drain(led) == 0  # not due again yet
