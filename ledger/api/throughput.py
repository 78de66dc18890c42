"""A batch's throughput per minute, read from its attempts (the dashboard's chart)."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.params import Parameter

from ledger.api.errors import ERROR_RESPONSES
from ledger.api.schemas import BatchId
from ledger.app import Ledger
from ledger.model import Throughput


@get(
    "/batches/{batch_id:str}/throughput",
    operation_id="batchThroughput",
    responses=ERROR_RESPONSES,
    tags=["batches"],
    summary="Documents finished per minute (and per second) over a window of minutes",
)
async def batch_throughput(
    batch_id: BatchId,
    ledger: Ledger,
    owner: str | None,
    minutes: Annotated[int, Parameter(ge=1, le=1440, description="window length")] = 60,
) -> Throughput:
    """The window ends now while the batch is active with work left, otherwise at its last
    attempt. Every minute of the window is present (zeros included), oldest first."""
    return await ledger.reads.throughput(batch_id, owner=owner, minutes=minutes)
