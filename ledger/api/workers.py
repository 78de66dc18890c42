"""Workers: the processes serving the ledger, with their state derived from heartbeats.

Workers are shared infrastructure, not a tenant's: like /metrics, the list needs an
operator key, or a loopback client while no key exists.
"""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.params import Parameter

from ledger.api.auth import Caller, require_operator
from ledger.api.errors import ERROR_RESPONSES
from ledger.api.schemas import Cursor, WorkerPage
from ledger.app import Ledger
from ledger.states import WorkerState

Limit = Annotated[int, Parameter(ge=1, le=1000, description="items per page")]


@get(
    "/workers",
    operation_id="listWorkers",
    responses=ERROR_RESPONSES,
    tags=["operations"],
    summary="List worker processes, newest first",
)
async def list_workers(
    ledger: Ledger,
    caller: Caller,
    state_filter: Annotated[
        WorkerState | None,
        Parameter(
            query="state",
            description="only workers in this state (lost: no heartbeat in the lease time)",
        ),
    ] = None,
    cursor: Cursor | None = None,
    limit: Limit = 50,
) -> WorkerPage:
    """Every worker process that registered: its state (``alive``, ``lost`` when its
    heartbeat is older than the lease time, ``stopped``), the processors it can run, the
    documents it holds now and has finished. For the operator only."""
    require_operator(caller, "workers")
    return WorkerPage.of(await ledger.workers.page(state=state_filter, cursor=cursor, limit=limit))
