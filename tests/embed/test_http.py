"""The embedding stage against a real OpenAI-compatible server on a loopback port: faults
are retried as the ledger's attempts, outages pause the batch, and no text is embedded
twice (the server counts what it delivered)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.backoff import parse_retry_after
from ledger.embedders.search import search
from ledger.errors import InvalidInput
from ledger.model import BatchSpec
from ledger.processors.ingest.config import IngestConfig
from ledger.states import BatchState, DocumentStatus
from ledger.worker.runtime import Worker
from tests.conftest import sql
from tests.embed.server import EmbeddingServer, tokens
from tests.embed.support import (
    check_vector_invariants,
    embedder_options,
    make_corpus,
    search_api,
    until,
)
from tests.pipeline.support import run_batch, source_specs, sync_url_of


def _results(url: str, batch_id: str) -> dict[str, dict[str, object]]:
    rows = sql(url, "SELECT source, result FROM documents WHERE batch_id = :b", b=batch_id)
    return {r[0]: json.loads(r[1]) if isinstance(r[1], str) else r[1] for r in rows}


def _chunk_texts(url: str) -> list[str]:
    return [r[0] for r in sql(url, "SELECT text FROM chunks")]


async def test_faults_are_retried_and_every_chunk_is_embedded_once(
    led: Ledger, db_url: str, tmp_path: Path, server: EmbeddingServer
) -> None:
    corpus = make_corpus(tmp_path / "docs")
    server.script.extend([("429", 1), ("500",), ("delay", 3.0)])
    spec = BatchSpec(id="faults", options=embedder_options(server.base_url))
    await run_batch(led, spec, corpus)

    batch = await led.reads.batch("faults")
    assert batch.counts[DocumentStatus.DONE] == len(corpus), batch.counts
    url = sync_url_of(db_url)
    codes = Counter(
        (r[0], r[1])
        for r in sql(url, "SELECT outcome, error_code FROM attempts WHERE outcome <> 'done'")
    )
    # The 500 was tried again within its call (no attempt spent); the 429 rescheduled its
    # document without charging it (outcome throttled); the timeout cost an attempt.
    assert codes == {("throttled", "embed_http_429"): 1, ("retry", "embed_timeout"): 1}
    # The 429 said "Retry-After: 1": that document's next attempt waited at least that long
    # (the backoff alone would be 0.05 s).
    (doc_id, failed_at) = sql(
        url, "SELECT document_id, finished_at FROM attempts WHERE error_code = 'embed_http_429'"
    )[0]
    (next_start,) = sql(
        url,
        "SELECT min(started_at) FROM attempts WHERE document_id = :d AND started_at > :f",
        d=doc_id,
        f=failed_at,
    )[0]
    waited = datetime.fromisoformat(str(next_start)) - datetime.fromisoformat(str(failed_at))
    assert waited >= timedelta(seconds=0.99), waited

    # Every chunk has its vector; the server delivered each distinct text exactly once.
    check_vector_invariants(url)
    texts = _chunk_texts(url)
    assert Counter(server.delivered) == Counter(set(texts))
    assert max(tokens(t) for t in server.delivered) <= server.max_tokens
    assert 400 not in server.statuses()
    results = _results(url, "faults")
    assert sum(r["embedded"] for r in results.values()) == len(set(texts))  # type: ignore[misc]
    for r in results.values():
        assert r["embedded"] + r["cache_hits"] == r["chunks"]  # type: ignore[operator]
        assert r["embedding_model"] == "bow-64"

    # Vector search finds a topic by its words' vectors; hybrid agrees; text mode too.
    for mode in ("vector", "hybrid", "text"):
        hits = await search(led, "telescope galaxy nebula comet", mode=mode, k=3)
        assert hits, mode
        assert Path(hits[0].source).name.startswith("astronomy"), (mode, hits[0].source)
    vector_hits = await search(led, "telescope galaxy nebula comet", mode="vector", k=3)
    assert vector_hits[0].score > vector_hits[-1].score > -1.0


async def test_reruns_send_only_text_never_embedded(
    led: Ledger, db_url: str, tmp_path: Path, server: EmbeddingServer
) -> None:
    corpus = make_corpus(tmp_path / "docs")
    options = embedder_options(server.base_url)
    await run_batch(led, BatchSpec(id="first", options=options), corpus)
    url = sync_url_of(db_url)
    first = list(server.delivered)
    assert len(first) == len(set(_chunk_texts(url))) > 0
    requests = len(server.requests)

    # Unchanged: every document skipped, nothing sent.
    _, stats = await run_batch(led, BatchSpec(id="again", options=options), corpus)
    assert stats.skipped == len(corpus)
    assert len(server.requests) == requests

    # Parsed again (reprocess): every chunk is a cache hit, nothing sent.
    again = {**options, "reprocess": True}
    _, stats = await run_batch(led, BatchSpec(id="reprocess", options=again), corpus)
    assert stats.done == len(corpus)
    assert len(server.requests) == requests
    for r in _results(url, "reprocess").values():
        assert (r["embedded"], r["cache_hits"]) == (0, r["chunks"])

    # One file gets a new last paragraph: only its new chunks are sent.
    edited = corpus[3]
    edited.write_text(
        edited.read_text() + "\nA wholly new closing paragraph about lighthouses and fog.\n"
    )
    _, stats = await run_batch(led, BatchSpec(id="edited", options=options), corpus)
    assert (stats.done, stats.skipped) == (1, len(corpus) - 1)
    sent = server.delivered[len(first) :]
    (doc_id,) = sql(url, "SELECT id FROM documents WHERE batch_id = 'edited' AND status = 'done'")[
        0
    ]
    new_texts = {r[0] for r in sql(url, "SELECT text FROM chunks WHERE document_id = :d", d=doc_id)}
    assert sent and set(sent) <= new_texts - set(first)
    assert len(sent) == len(set(sent)) < len(new_texts)
    check_vector_invariants(url)


async def test_an_outage_pauses_the_batch_and_resume_finishes_it(
    db_url: str, tmp_path: Path, server: EmbeddingServer
) -> None:
    from tests.pipeline.support import pipeline_settings

    settings = pipeline_settings(
        db_url, tmp_path / "home", breaker_window=4, max_attempts=10, concurrency=2
    )
    led = await Ledger.open(settings)
    try:
        corpus = make_corpus(tmp_path / "docs")
        server.delay = 0.05
        spec = BatchSpec(id="outage", options=embedder_options(server.base_url))
        await led.queue.submit(spec, source_specs(corpus))
        url = sync_url_of(db_url)
        worker = Worker(led, batch_ids=["outage"])
        running = asyncio.create_task(worker.run(until_complete=True))

        async def some_done() -> bool:
            return (await led.reads.batch("outage")).counts[DocumentStatus.DONE] >= 3

        async def paused() -> bool:
            assert not running.done()
            return (await led.reads.batch("outage")).state is BatchState.PAUSED

        await until(some_done)
        server.down()
        await until(paused)
        worker.stop()
        await asyncio.wait_for(running, 30)

        batch = await led.reads.batch("outage")
        assert "embed_unavailable" in (batch.pause_reason or "")
        done_before = {r[0] for r in sql(url, "SELECT id FROM documents WHERE status = 'done'")}
        assert 3 <= len(done_before) < len(corpus)
        staged = list((tmp_path / "home" / "stage").glob("*.spool"))
        assert staged, "documents whose embedding failed keep their chunks"

        server.up()
        await led.control.resume("outage")
        await Worker(led, batch_ids=["outage"]).run(until_complete=True)
        batch = await led.reads.batch("outage")
        assert batch.counts[DocumentStatus.DONE] == len(corpus)
        # Finished work was not redone: one attempt each for the documents done before.
        redone = sql(
            url,
            "SELECT document_id FROM attempts GROUP BY document_id HAVING count(*) > 1",
        )
        assert not {r[0] for r in redone} & done_before
        # Documents with a staged spool were not parsed again.
        results = _results(url, "outage")
        assert sum(1 for r in results.values() if r.get("reused_chunks")) >= len(staged)
        assert list((tmp_path / "home" / "stage").iterdir()) == []
        check_vector_invariants(url)
        assert Counter(server.delivered) == Counter(set(_chunk_texts(url)))
    finally:
        await led.close()


async def test_a_refused_request_fails_the_document_with_the_servers_message(
    sqlite_url: str, tmp_path: Path, server: EmbeddingServer
) -> None:
    from tests.pipeline.support import pipeline_settings

    led = await Ledger.open(pipeline_settings(sqlite_url, tmp_path / "home"))
    try:
        corpus = make_corpus(tmp_path / "docs", per_topic=1)[:2]
        options = embedder_options(server.base_url, model="no-such-model")
        await run_batch(led, BatchSpec(id="refused", options=options), corpus)
        batch = await led.reads.batch("refused")
        assert batch.counts[DocumentStatus.FAILED] == 2
        url = sync_url_of(sqlite_url)
        rows = sql(url, "SELECT error_code, error_message, attempts FROM documents")
        for code, message, attempts in rows:
            assert code == "embed_http_4xx"
            assert "model 'no-such-model' not found" in message
            assert attempts == 1  # permanent: not retried
        assert sql(url, "SELECT count(*) FROM chunks")[0][0] == 0
        assert list((tmp_path / "home" / "stage").iterdir()) == []
    finally:
        await led.close()


def test_chunk_size_follows_the_embedders_input_limit() -> None:
    spec = {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}
    plain = IngestConfig.from_options({})
    assert plain.ingest.chunk_size == 1000
    sized = IngestConfig.from_options({"embedder": {**spec, "max_tokens": 64}})
    assert sized.ingest.chunk_size == (64 - 2) * 3
    assert sized.ingest.chunk_overlap == int(186 * 0.15)
    local = IngestConfig.from_options({"embedder": {"kind": "local"}})
    assert (local.ingest.chunk_size, local.embedder and local.embedder.batch_size) == (762, 16)
    big = IngestConfig.from_options({"embedder": {**spec, "max_tokens": 8191}})
    assert big.ingest.chunk_size == 1000  # the usual size fits: kept
    with pytest.raises(InvalidInput, match="chunk_size 500 is more than the embedder takes"):
        IngestConfig.from_options({"chunk_size": 500, "embedder": {**spec, "max_tokens": 64}})
    with pytest.raises(InvalidInput, match="unknown embedder options: colour"):
        IngestConfig.from_options({"embedder": {**spec, "colour": "red"}})
    with pytest.raises(InvalidInput, match="kind must be one of"):
        IngestConfig.from_options({"embedder": {"kind": "magic"}})
    assert IngestConfig.from_options({"embedder": {"kind": "none"}}).embedder is None


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("99999", now=now) == 3600.0


async def test_search_modes_on_the_api(tmp_path: Path, server: EmbeddingServer) -> None:
    from tests.api.conftest import stop_server

    # The API embeds queries only through operator profiles: the batch names one. A short
    # deadline: the search with the endpoint down below retries only that long.
    env = {"LEDGER_SEARCH_EMBED_DEADLINE_SECONDS": "0.5"}
    api = await search_api(tmp_path, server.base_url, env)
    try:
        async with api.client() as client:
            for mode in ("text", "vector", "hybrid"):
                query = "bishop gambit rook pawn checkmate knight castling endgame"
                if mode == "text":  # full text needs every word in one chunk
                    query = " OR ".join(query.split())
                response = await client.get(
                    "/api/v1/search", params={"q": query, "mode": mode, "k": 2}
                )
                assert response.status_code == 200, response.text
                hits = response.json()["hits"]
                assert Path(hits[0]["source"]).name.startswith("chess"), (mode, hits)
            wrong = await client.get(
                "/api/v1/search", params={"q": "rook", "mode": "vector", "model": "other"}
            )
            assert wrong.status_code == 400
            assert "no chunk vectors of model other" in wrong.json()["detail"]
            bad = await client.get("/api/v1/search", params={"q": "rook", "mode": "fuzzy"})
            assert bad.status_code == 422  # a validation error, as for every bad parameter
            server.down()
            down = await client.get("/api/v1/search", params={"q": "rook", "mode": "vector"})
            assert down.status_code == 503
            assert "cannot be reached" in down.json()["detail"]
    finally:
        await asyncio.to_thread(stop_server, api)
