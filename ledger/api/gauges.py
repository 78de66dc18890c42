"""Gauges read from the ledger when /metrics is scraped: workers by state, documents in
flight, and the per-batch and per-table figures that docs/alerts.yml alerts on.

They describe every process's work (the database's view), unlike the per-process counters
in ``ledger.metrics``; only the API serves them, so only it loads them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ledger.monitoring.gauges import BatchGauge


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
# Read from the ledger at scrape time (ledger.monitoring.gauges), one series per unfinished active
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
