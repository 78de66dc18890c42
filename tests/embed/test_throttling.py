"""Rate limits as backpressure, against the real embedding server on a loopback port: a 429
reschedules the document without charging an attempt, a 5xx is retried within the call,
and only a service that throttles past the limit fails documents."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from ledger import metrics
from ledger.app import Ledger
from ledger.model import BatchSpec
from ledger.states import DocumentStatus
from tests.conftest import sql
from tests.embed.server import EmbeddingServer
from tests.embed.support import check_vector_invariants, embedder_options, make_corpus
from tests.pipeline.support import pipeline_settings, run_batch, sync_url_of

FLAKY = [(5, ("429", 1)), (7, ("500",))]  # the endpoint of the issue


def _outcomes(url: str) -> Counter[tuple[str, str | None]]:
    return Counter((r[0], r[1]) for r in sql(url, "SELECT outcome, error_code FROM attempts"))


def _stamp(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


async def test_a_flaky_endpoint_finishes_every_document_at_the_default_attempts(
    db_url: str, tmp_path: Path, server: EmbeddingServer
) -> None:
    """429 on every 5th call (Retry-After: 1) and 500 on every 7th, 40 documents, the
    default 3 attempts: every document is done."""
    server.pattern = list(FLAKY)
    settings = pipeline_settings(db_url, tmp_path / "home")
    assert settings.max_attempts == 3  # the default
    led = await Ledger.open(settings)
    try:
        corpus = make_corpus(tmp_path / "docs", per_topic=7)[:40]
        spec = BatchSpec(id="flaky", options=embedder_options(server.base_url))
        _, stats = await run_batch(led, spec, corpus)
        batch = await led.reads.batch("flaky")
        assert batch.counts[DocumentStatus.DONE] == 40, batch.counts
    finally:
        await led.close()

    # The process shows its adaptive limit for the model, within the floor and the ceiling.
    assert 1 <= metrics.stage_limits()[("embed", "bow-64")] <= 2
    url = sync_url_of(db_url)
    statuses = Counter(server.statuses())
    assert statuses[429] > 0 and statuses[500] > 0, statuses
    outcomes = _outcomes(url)
    # The 429s reached the ledger as throttles; the 500s were tried again within their call
    # (only a retry that met a 500 again, twice, would cost an attempt).
    assert outcomes[("throttled", "embed_http_429")] > 0, outcomes
    assert outcomes[("retry", "embed_http_5xx")] < statuses[500], (outcomes, statuses)
    assert not [o for o in outcomes if o[0] == "failed"], outcomes
    assert stats.throttled == outcomes[("throttled", "embed_http_429")]
    # No document was charged more than its attempts; throttles were not charged.
    rows = sql(
        url,
        "SELECT d.id, d.attempts, count(a.id),"
        " sum(CASE WHEN a.outcome = 'throttled' THEN 1 ELSE 0 END)"
        " FROM documents d JOIN attempts a ON a.document_id = d.id GROUP BY d.id, d.attempts",
    )
    assert len(rows) == 40
    for doc_id, charged, rows_of_doc, throttles in rows:
        assert 1 <= charged == rows_of_doc - throttles <= 3, (doc_id, charged, throttles)
    # Attempt rows are numbered 1, 2, 3... per document, throttles included.
    numbers = sql(url, "SELECT document_id, attempt FROM attempts ORDER BY document_id, id")
    seen: dict[int, int] = {}
    for doc_id, number in numbers:
        assert number == seen.get(doc_id, 0) + 1
        seen[doc_id] = number
    # The events say the same: one document_throttled per throttled attempt.
    (throttle_events,) = sql(url, "SELECT count(*) FROM events WHERE kind = 'document_throttled'")[
        0
    ]
    assert throttle_events == outcomes[("throttled", "embed_http_429")]
    retry_events = sql(url, "SELECT count(*) FROM events WHERE kind = 'document_retry'")
    assert retry_events == [(sum(n for (o, _), n in outcomes.items() if o == "retry"),)]
    check_vector_invariants(url)


async def test_a_retry_after_date_is_honoured(
    led: Ledger, db_url: str, tmp_path: Path, server: EmbeddingServer
) -> None:
    server.script.append(("429", "date+2"))
    corpus = make_corpus(tmp_path / "docs", per_topic=1)[:1]
    await run_batch(led, BatchSpec(id="dated", options=embedder_options(server.base_url)), corpus)
    assert (await led.reads.batch("dated")).counts[DocumentStatus.DONE] == 1
    url = sync_url_of(db_url)
    (throttled_at,) = sql(url, "SELECT finished_at FROM attempts WHERE outcome = 'throttled'")[0]
    (next_start,) = sql(url, "SELECT started_at FROM attempts WHERE outcome = 'done'")[0]
    # An HTTP date has whole seconds: "2 s ahead" is at least 1 s after the answer.
    waited = _stamp(next_start) - _stamp(throttled_at)
    assert waited >= timedelta(seconds=1), waited
    assert sql(url, "SELECT attempts FROM documents") == [(1,)]


async def test_throttled_past_the_limit_fails_with_rate_limited(
    db_url: str, tmp_path: Path, server: EmbeddingServer
) -> None:
    server.pattern = [(1, ("429", 0))]  # every request, forever
    settings = pipeline_settings(
        db_url, tmp_path / "home", throttle_limit=3, max_attempts=2, breaker_window=100
    )
    led = await Ledger.open(settings)
    try:
        corpus = make_corpus(tmp_path / "docs", per_topic=1)[:2]
        spec = BatchSpec(id="limited", options=embedder_options(server.base_url))
        await run_batch(led, spec, corpus)
        batch = await led.reads.batch("limited")
        assert batch.counts[DocumentStatus.FAILED] == 2, batch.counts
    finally:
        await led.close()
    url = sync_url_of(db_url)
    for code, message, attempts in sql(
        url, "SELECT error_code, error_message, attempts FROM documents"
    ):
        assert code == "rate_limited"
        assert "throttled 5 times in a row" in message and "gave up after 2 attempts" in message
        assert attempts == 2
    # Per document: 3 free throttles, then 2 charged ones (retry, then failed).
    histories = sql(
        url, "SELECT document_id, outcome, error_code FROM attempts ORDER BY document_id, id"
    )
    by_doc: dict[int, list[tuple[str, str]]] = {}
    for doc_id, outcome, code in histories:
        by_doc.setdefault(doc_id, []).append((outcome, code))
    for history in by_doc.values():
        assert history == [
            *[("throttled", "embed_http_429")] * 3,
            ("retry", "rate_limited"),
            ("failed", "rate_limited"),
        ]


async def test_throttling_alone_never_trips_the_circuit_breaker(
    db_url: str, tmp_path: Path, server: EmbeddingServer
) -> None:
    # A small breaker window, and more 429s in a row than it holds: throttles are left out
    # of its window, so the batch runs on and every document ends done.
    server.script.extend([("429", 0)] * 12)
    settings = pipeline_settings(db_url, tmp_path / "home", breaker_window=4, throttle_limit=50)
    led = await Ledger.open(settings)
    try:
        corpus = make_corpus(tmp_path / "docs", per_topic=1)
        spec = BatchSpec(id="paced", options=embedder_options(server.base_url))
        await run_batch(led, spec, corpus)
        batch = await led.reads.batch("paced")
        assert batch.pause_reason is None
        assert batch.counts[DocumentStatus.DONE] == len(corpus), batch.counts
    finally:
        await led.close()
    url = sync_url_of(db_url)
    assert _outcomes(url)[("throttled", "embed_http_429")] >= 4
    assert sql(url, "SELECT count(*) FROM events WHERE kind = 'batch_paused'") == [(0,)]
    assert sql(url, "SELECT max(attempts) FROM documents") == [(1,)]
