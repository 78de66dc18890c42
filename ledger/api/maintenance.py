"""What the last maintenance runs did (operators only: maintenance spans every tenant)."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.exceptions import PermissionDeniedException
from litestar.params import Parameter
from msgspec import Struct

from ledger.api.auth import OPERATOR, Caller
from ledger.api.errors import ERROR_RESPONSES
from ledger.app import Ledger
from ledger.maintenance.run import last_runs
from ledger.model import MaintenanceRun


class MaintenanceOut(Struct, kw_only=True):
    """The most recent maintenance runs, newest first."""

    runs: list[MaintenanceRun]


@get(
    "/maintenance",
    operation_id="maintenanceRuns",
    responses=ERROR_RESPONSES,
    tags=["operations"],
    summary="What the last maintenance runs did",
)
async def maintenance_runs(
    ledger: Ledger,
    caller: Caller,
    limit: Annotated[int, Parameter(ge=1, le=100, description="runs to show")] = 10,
) -> MaintenanceOut:
    """Maintenance (lease rescue, upload cleanup, retention) covers every tenant, so this
    is for the operator: an API key with the 'operator' role, or, while no key exists, a
    loopback client without one. A tenant key gets 403."""
    if not caller.local and caller.role != OPERATOR:
        raise PermissionDeniedException(
            detail="maintenance covers every tenant: it needs an operator key "
            "(`ledger keys create --role operator`)"
        )
    runs = await last_runs(ledger, limit=limit)
    return MaintenanceOut(runs=runs)
