"""Driving batches to the states webhooks announce, as a worker would."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import make_url

from ledger.app import Ledger
from ledger.model import BatchSpec, ErrorInfo, Outcome, SourceSpec


async def submit(ledger: Ledger, batch_id: str, n: int, *, owner: str | None = None) -> None:
    spec = BatchSpec(id=batch_id, processor="noop", owner=owner)
    await ledger.queue.submit(spec, [SourceSpec(f"/{batch_id}/{i}") for i in range(n)])


async def work(
    ledger: Ledger,
    batch_id: str,
    *,
    limit: int = 1000,
    error: Callable[[str], ErrorInfo | None] = lambda source: None,
) -> int:
    """Claim and finish up to ``limit`` due documents of the batch; ``error(source)`` makes
    a document fail with that error. Returns how many were finished."""
    worker = await ledger.workers.register(concurrency=8)
    finished = 0
    while finished < limit:
        claimed = await ledger.queue.claim(worker, min(8, limit - finished), batch_ids=[batch_id])
        if not claimed:
            break
        outcomes = []
        for doc in claimed:
            info = error(doc.source)
            outcomes.append(Outcome.done(doc, {}) if info is None else Outcome.failed(doc, info))
        await ledger.queue.complete(worker, outcomes)
        finished += len(claimed)
    await ledger.workers.stopped(worker)
    return finished


def permanent(code: str = "bad_input") -> ErrorInfo:
    return ErrorInfo(code=code, message=f"{code} happened", retryable=False)


def systemic(code: str = "http_503") -> ErrorInfo:
    return ErrorInfo(code=code, message=f"{code} happened", retryable=True, systemic=True)


def sync_url(url: str) -> str:
    """The database of an async URL, for plain synchronous SQL checks."""
    parsed = make_url(url)
    driver = "sqlite" if parsed.get_backend_name() == "sqlite" else "postgresql+psycopg2"
    return str(parsed.set(drivername=driver))
