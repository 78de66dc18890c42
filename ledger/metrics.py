"""Prometheus metrics of this process, in a registry of their own.

The worker runtime observes these as it works (hooks below); the API's /metrics exposes them
together with gauges read from the ledger at scrape time. Counters and histograms here are
per process, as Prometheus expects: sum them over processes in queries.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ledger.core.gauges import BatchGauge

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

DOCUMENTS_PROCESSED = Counter(
    "ledger_worker_documents",
    "Documents whose attempt this process ended, by outcome (done, skipped, retry, failed...).",
    ["outcome"],
    registry=REGISTRY,
)
ATTEMPTS = Counter(
    "ledger_worker_attempts",
    "Attempts this process started.",
    registry=REGISTRY,
)
CLAIM_SECONDS = Histogram(
    "ledger_claim_seconds",
    "Time one claim transaction took.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
PROCESSING_SECONDS = Histogram(
    "ledger_processing_seconds",
    "Time a processor took for one document, by processor.",
    ["processor"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)


def observe_claim(seconds: float, claimed: int) -> None:
    """Hook: a claim transaction took ``seconds`` and leased ``claimed`` documents."""
    CLAIM_SECONDS.observe(seconds)
    ATTEMPTS.inc(claimed)


# Labelled children, looked up once: ``labels()`` validates and locks on every call, which
# was a large part of the per-document cost of a fast processor. Few distinct values.
_processing: dict[str, Any] = {}
_processed: dict[str, Any] = {}


def observe_processed(processor: str, outcome: str, seconds: float) -> None:
    """Hook: one document's attempt ended with ``outcome`` after ``seconds`` of processing."""
    timer = _processing.get(processor)
    if timer is None:
        timer = _processing.setdefault(processor, PROCESSING_SECONDS.labels(processor))
    counter = _processed.get(outcome)
    if counter is None:
        counter = _processed.setdefault(outcome, DOCUMENTS_PROCESSED.labels(outcome))
    timer.observe(seconds)
    counter.inc()


# --------------------------------------------------------------------------- workers
# Read from the ledger at scrape time (every process's workers, not only this one's).


def worker_gauges(by_state: Mapping[str, int], in_flight: int) -> Iterator[GaugeMetricFamily]:
    """``ledger_workers{state}`` (alive, lost, stopped; derived from heartbeats as every face
    shows them) and ``ledger_documents_in_flight`` (documents running now, any worker)."""
    workers = GaugeMetricFamily(
        "ledger_workers",
        "Worker processes by state: alive, lost (no heartbeat within the lease time), stopped.",
        labels=["state"],
    )
    for state, count in by_state.items():
        workers.add_metric([state], count)
    yield workers
    yield GaugeMetricFamily(
        "ledger_documents_in_flight",
        "Documents leased to a worker and running now, from the batch counters.",
        value=in_flight,
    )


# ---------------------------------------------------------------------------- alert gauges
# Read from the ledger at scrape time (ledger.core.gauges), one series per unfinished active
# batch (bounded by the scrape's batch limit) and per table. docs/alerts.yml alerts on them.


class AlertGauges(Collector):
    """The scrape's figures for alerting, already fetched (``collect`` is synchronous)."""

    def __init__(self, batches: Sequence[BatchGauge], tables: dict[str, int]) -> None:
        self.batches = batches
        self.tables = tables

    def collect(self) -> Iterator[GaugeMetricFamily]:
        oldest = GaugeMetricFamily(
            "ledger_oldest_due_document_age_seconds",
            "How long the oldest due pending document of each unfinished batch has waited.",
            labels=["batch"],
        )
        failed = GaugeMetricFamily(
            "ledger_batch_failed_ratio",
            "Failed share of the finished documents of each unfinished batch.",
            labels=["batch"],
        )
        stalled = GaugeMetricFamily(
            "ledger_batch_seconds_since_progress",
            "Seconds since each unfinished batch with due or running documents last "
            "finished one (or started).",
            labels=["batch"],
        )
        for b in self.batches:
            if b.oldest_due_seconds is not None:
                oldest.add_metric([b.batch_id], b.oldest_due_seconds)
            if b.failed_ratio is not None:
                failed.add_metric([b.batch_id], b.failed_ratio)
            if b.seconds_since_progress is not None:
                stalled.add_metric([b.batch_id], b.seconds_since_progress)
        yield oldest
        yield failed
        yield stalled
        rows = GaugeMetricFamily(
            "ledger_table_rows",
            "Rows per ledger table (PostgreSQL: the statistics' estimate; SQLite: a count).",
            labels=["table"],
        )
        for table, count in sorted(self.tables.items()):
            rows.add_metric([table], count)
        yield rows
