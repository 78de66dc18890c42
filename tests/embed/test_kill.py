"""SIGKILL a worker subprocess twice while it embeds: every done document has all its
vectors, and the server delivered no text twice, except at most what was in flight (answered
but not yet committed to the cache) when an attempt was cut short."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec
from ledger.states import DocumentStatus
from tests.conftest import sql
from tests.embed.server import EmbeddingServer
from tests.embed.support import check_vector_invariants, embedder_options, make_corpus
from tests.pipeline.support import check_index_invariants, source_specs, sync_url_of
from tests.pipeline.test_exactly_once import kill_when, start_worker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


async def test_sigkill_while_embedding_loses_no_vector_and_resends_at_most_in_flight(
    sqlite_url: str, tmp_path: Path, server: EmbeddingServer
) -> None:
    from tests.pipeline.support import pipeline_settings

    led = await Ledger.open(pipeline_settings(sqlite_url, tmp_path / "home"))
    try:
        corpus = make_corpus(tmp_path / "docs", per_topic=5)
        server.delay = 0.03  # so that kills land while requests are in flight
        options = embedder_options(server.base_url, concurrency=2, batch_size=4)
        await led.queue.submit(BatchSpec(id="kill", options=options), source_specs(corpus))
        url = sync_url_of(sqlite_url)
        home = tmp_path / "worker-home"
        for at_least in (6, 18):
            proc = start_worker(sqlite_url, home, "kill")
            kill_when(proc, url, at_least, timeout=90)
            check_index_invariants(sqlite_url)
            check_vector_invariants(url)
        proc = start_worker(sqlite_url, home, "kill")
        assert proc.wait(timeout=120) == 0

        batch = await led.reads.batch("kill")
        assert batch.counts[DocumentStatus.DONE] == len(corpus)
        check_index_invariants(sqlite_url)
        check_vector_invariants(url)
        texts = {r[0] for r in sql(url, "SELECT text FROM chunks")}
        delivered = Counter(server.delivered)
        assert set(delivered) == texts
        again = sum(n - 1 for n in delivered.values())
        # A text is sent again only when its answer arrived and the attempt ended before the
        # cache commit. Per process at most `concurrency` groups of `batch_size` texts are
        # between sending and committing, so a kill costs at most 2 * 4; so does a lease
        # that ran out under load in a worker that lived on (its attempt is cancelled).
        killed = [r[0] for r in sql(url, "SELECT id FROM workers ORDER BY started_at LIMIT 2")]
        cut = sql(
            url,
            "SELECT count(*) FROM attempts WHERE outcome = 'lease_expired'"
            " AND worker_id NOT IN (:a, :b)",
            a=killed[0],
            b=killed[1],
        )[0][0]
        assert again <= (len(killed) + cut) * 2 * 4, (again, cut)
        print(f"sent again after 2 kills and {cut} other cut attempts: {again} texts")
    finally:
        await led.close()
