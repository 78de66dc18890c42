"""Prometheus metrics of this process, in a registry of their own.

The worker runtime observes these as it works (hooks below); the API's /metrics exposes them
together with gauges read from the ledger at scrape time. Counters and histograms here are
per process, as Prometheus expects: sum them over processes in queries.

The metrics exist once something asks for the registry (``registry()``, which the API does
when it loads): until then the hooks do nothing, so a process whose metrics nobody can read
(``ledger ingest``, ``ledger worker``) neither loads prometheus_client nor pays per document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


@dataclass(frozen=True)
class _Metrics:
    registry: CollectorRegistry
    documents_processed: Counter
    attempts: Counter
    claim_seconds: Histogram
    processing_seconds: Histogram
    stage_concurrency: Gauge
    sink_throttles: Counter


_metrics: _Metrics | None = None


def registry() -> CollectorRegistry:
    """This process's registry; the metrics are created (and recorded from now on) on the
    first call."""
    global _metrics
    if _metrics is None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        reg = CollectorRegistry(auto_describe=True)
        _metrics = _Metrics(
            registry=reg,
            documents_processed=Counter(
                "ledger_worker_documents",
                "Documents whose attempt this process ended, by outcome "
                "(done, skipped, retry, failed...).",
                ["outcome"],
                registry=reg,
            ),
            attempts=Counter(
                "ledger_worker_attempts", "Attempts this process started.", registry=reg
            ),
            claim_seconds=Histogram(
                "ledger_claim_seconds",
                "Time one claim transaction took.",
                buckets=_LATENCY_BUCKETS,
                registry=reg,
            ),
            processing_seconds=Histogram(
                "ledger_processing_seconds",
                "Time a processor took for one document, by processor.",
                ["processor"],
                buckets=_LATENCY_BUCKETS,
                registry=reg,
            ),
            stage_concurrency=Gauge(
                "ledger_stage_concurrency",
                "Requests a stage of this process may have in flight to one service right "
                "now: its adaptive limit (halved on a 429, grown by one after a run of "
                "successes), by stage (embed...) and target (the model or store); for a "
                "sink stage (sink:<name>), the points it sends its store in one write.",
                ["stage", "target"],
                registry=reg,
            ),
            sink_throttles=Counter(
                "ledger_sink_throttles",
                "Sink rows this process rescheduled because their store throttled (HTTP "
                "429), by sink profile; those past LEDGER_THROTTLE_LIMIT in a row included.",
                ["sink"],
                registry=reg,
            ),
        )
        for (stage, target), limit in _stage_limits.items():
            _metrics.stage_concurrency.labels(stage, target).set(limit)
    return _metrics.registry


def __getattr__(name: str) -> Any:
    if name == "REGISTRY":  # the registry as a module attribute, as it used to be
        return registry()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def observe_claim(seconds: float, claimed: int) -> None:
    """Hook: a claim transaction took ``seconds`` and leased ``claimed`` documents."""
    m = _metrics
    if m is None:
        return
    m.claim_seconds.observe(seconds)
    m.attempts.inc(claimed)


# Labelled children, looked up once: ``labels()`` validates and locks on every call, which
# was a large part of the per-document cost of a fast processor. Few distinct values.
_processing: dict[str, Any] = {}
_processed: dict[str, Any] = {}


def observe_processed(processor: str, outcome: str, seconds: float) -> None:
    """Hook: one document's attempt ended with ``outcome`` after ``seconds`` of processing."""
    m = _metrics
    if m is None:
        return
    timer = _processing.get(processor)
    if timer is None:
        timer = _processing.setdefault(processor, m.processing_seconds.labels(processor))
    counter = _processed.get(outcome)
    if counter is None:
        counter = _processed.setdefault(outcome, m.documents_processed.labels(outcome))
    timer.observe(seconds)
    counter.inc()


# The last limit of each (stage, target), so a registry created after the limiter was (the
# API loads it lazily) still shows it.
_stage_limits: dict[tuple[str, str], int] = {}


def observe_stage_limit(stage: str, target: str, limit: int) -> None:
    """Hook: the adaptive concurrency of ``stage`` towards ``target`` is now ``limit``."""
    _stage_limits[(stage, target)] = limit
    m = _metrics
    if m is not None:
        m.stage_concurrency.labels(stage, target).set(limit)


def observe_sink_throttled(sink: str) -> None:
    """Hook: a row of ``sink`` was throttled by its store."""
    m = _metrics
    if m is not None:
        m.sink_throttles.labels(sink).inc()


def stage_limits() -> dict[tuple[str, str], int]:
    """The current adaptive limit of every (stage, target) of this process."""
    return dict(_stage_limits)
