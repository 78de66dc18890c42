"""Operations: liveness and readiness (/health) and Prometheus metrics (/metrics)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from litestar import Response, get
from litestar.datastructures import State
from litestar.openapi.spec import Operation
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ledger import metrics
from ledger.api.auth import Caller, require_operator
from ledger.api.errors import ERROR_RESPONSES
from ledger.api.gauges import AlertGauges, worker_gauges
from ledger.api.schemas import Health
from ledger.app import Ledger
from ledger.model import QueueDepth
from ledger.states import DocumentStatus, WorkerState
from ledger.worker.supervisor import WorkerSupervisor

log = logging.getLogger(__name__)
# The process's worker metrics are recorded from now on: this server can show them.
_WORKER_METRICS = metrics.registry()

QUEUE_DEPTH_BATCHES = 1000  # at most this many batches get a queue-depth series


@dataclass
class _PublicOperation(Operation):
    """An operation that needs no API key: load balancers and orchestrators probe it."""

    def __post_init__(self) -> None:
        self.security = [{}]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ledger")
    except PackageNotFoundError:
        return "unknown"


@get(
    "/health",
    operation_id="health",
    operation_class=_PublicOperation,
    responses=ERROR_RESPONSES,
    tags=["operations"],
    summary="Process and database",
)
async def health(ledger: Ledger, state: State) -> Response[Health]:
    """200 when the process runs, the database answers and the in-process workers (if
    any) run; 503 (same body) otherwise."""
    try:
        await ledger.ping()
        database = "ok"
    except Exception as exc:  # health must answer whatever the database does
        log.warning("health check: database unreachable: %s", exc)
        database = f"unreachable: {type(exc).__name__}"
    supervisor: WorkerSupervisor | None = state.get("workers")
    workers = "off" if supervisor is None else (supervisor.problem or "ok")
    ok = database == "ok" and workers in ("ok", "off")
    body = Health(
        status="ok" if ok else "degraded",
        database=database,
        workers=workers,
        version=_version(),
    )
    return Response(body, status_code=200 if ok else 503)


class _ScrapeCollector(Collector):
    """Gauges read from the ledger for one scrape (already fetched; collect() is sync)."""

    def __init__(
        self,
        totals: dict[DocumentStatus, int],
        depths: list[QueueDepth],
        workers: Mapping[WorkerState, int],
    ) -> None:
        self.totals = totals
        self.depths = depths
        self.workers = workers

    def collect(self) -> Iterator[GaugeMetricFamily]:
        documents = GaugeMetricFamily(
            "ledger_documents",
            "Documents in the ledger by status (outcome), from the batch counters.",
            labels=["status"],
        )
        for status, count in self.totals.items():
            documents.add_metric([status.value], count)
        yield documents
        depth = GaugeMetricFamily(
            "ledger_queue_depth",
            "Documents left (pending and running) per unfinished batch.",
            labels=["batch", "status"],
        )
        for d in self.depths:
            depth.add_metric([d.batch_id, "pending"], d.pending)
            depth.add_metric([d.batch_id, "running"], d.running)
        yield depth
        by_state = {state.value: n for state, n in self.workers.items()}
        yield from worker_gauges(by_state, self.totals[DocumentStatus.RUNNING])


@get(
    "/metrics",
    operation_id="metrics",
    responses=ERROR_RESPONSES,
    tags=["operations"],
    summary="Prometheus metrics (text format)",
    media_type=CONTENT_TYPE_LATEST,
)
async def prometheus_metrics(ledger: Ledger, caller: Caller) -> Response[bytes]:
    """This process's worker metrics and the ledger's counts of every tenant.

    They mix every tenant's work, so they are for the operator: an API key with the
    'operator' role (`ledger keys create --role operator`), or, while no key exists, a
    loopback client without one. A tenant key gets 403."""
    require_operator(caller, "metrics")
    totals = await ledger.reads.document_totals(owner=None)
    depths = await ledger.reads.queue_depths(owner=None, limit=QUEUE_DEPTH_BATCHES)
    workers = await ledger.workers.counts()
    batch_gauges, table_rows = await ledger.reads.alert_gauges(limit=QUEUE_DEPTH_BATCHES)
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_ScrapeCollector(totals, depths, workers))
    scrape.register(AlertGauges(batch_gauges, table_rows))
    body = generate_latest(_WORKER_METRICS) + generate_latest(scrape)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
