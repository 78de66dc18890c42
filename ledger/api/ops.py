"""Operations: liveness and readiness (/health) and Prometheus metrics (/metrics)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from litestar import Response, get
from litestar.datastructures import State
from litestar.exceptions import PermissionDeniedException
from litestar.openapi.spec import Operation
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ledger import metrics
from ledger.api.auth import OPERATOR, Caller
from ledger.api.errors import ERROR_RESPONSES
from ledger.api.schemas import Health
from ledger.core.ledger import Ledger
from ledger.records import QueueDepth
from ledger.states import DocumentStatus
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

    def __init__(self, totals: dict[DocumentStatus, int], depths: list[QueueDepth]) -> None:
        self.totals = totals
        self.depths = depths

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
    if not caller.local and caller.role != OPERATOR:
        raise PermissionDeniedException(
            detail="metrics cover every tenant: they need an operator key "
            "(`ledger keys create --role operator`)"
        )
    totals = await ledger.document_totals(owner=None)
    depths = await ledger.queue_depths(owner=None, limit=QUEUE_DEPTH_BATCHES)
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_ScrapeCollector(totals, depths))
    body = generate_latest(_WORKER_METRICS) + generate_latest(scrape)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
