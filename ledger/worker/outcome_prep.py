"""What the worker does around a processor so that the processor never touches the ledger.

Before: :func:`with_facts` reads the dedup facts of a claimed group in one read (only for
documents whose processor asks for them, :func:`ledger.processors.base.wants_facts`) and
hands each document its own (``ClaimedDocument.facts``).

After: :func:`prepare` turns an outcome's chunk spool into what the finish transaction can
store without reading a file under the write lock. A small spool (at most
``INLINE_SPOOL_BYTES``) is read into the outcome (``Outcome.rows``); so is one of up to
``INLINE_SPOOL_MAX_BYTES`` while the worker's :class:`InlineAllowance` has room for it (the
spools it holds in memory, waiting to be recorded, stay under ``INLINE_ALLOWANCE_BYTES``).
Any other is staged, ``STAGE_BLOCK`` chunks per short transaction, each fenced by the lease
(:mod:`ledger.index.staged_chunks`), so a huge document never sits in memory. Staging
writes each chunk twice more (staged, then moved and deleted by the finish) and costs a
transaction per block: on a corpus of web pages and manuals, half of the chunks came in
spools of 64 KiB to 1 MiB. The chunks' cache keys (SHA-256 of their text) are computed here
too, in a thread, when vectors are attached from the cache.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.artifacts import ChunkRow, ChunkSpool, DocumentFacts, text_sha256
from ledger.errors import LeaseLost, RetryableError
from ledger.index import dedup_facts, staged_chunks
from ledger.loop_io import FileSteps
from ledger.model import ClaimedDocument, Outcome
from ledger.processors.base import ProcessorContext, wants_facts
from ledger.processors.ingest.chunking import ChunkRecord
from ledger.processors.ingest.spool import iter_spool

if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.processors.registry import ProcessorRegistry

log = logging.getLogger(__name__)

# A spool up to this size travels in the outcome (a commit group of 256 such outcomes
# holds at most 16 MiB); a bigger one is staged a block at a time, unless the worker's
# allowance takes it (up to INLINE_SPOOL_MAX_BYTES each, INLINE_ALLOWANCE_BYTES in all).
INLINE_SPOOL_BYTES = 64 * 1024
# How fast the worker's spool folder answers (see ledger.loop_io).
SPOOL_STEPS = FileSteps()
INLINE_SPOOL_MAX_BYTES = 1 << 20
INLINE_ALLOWANCE_BYTES = 16 << 20
STAGE_BLOCK = 1_000  # chunks per staging transaction: bounds memory and the lock's hold


class InlineAllowance:
    """The spool bytes above ``INLINE_SPOOL_BYTES`` a worker may hold in memory at once:
    taken when such a spool is read into its outcome, given back when the outcome leaves
    the worker (recorded, given up, or its lease lost). One per worker, used from its event
    loop only."""

    def __init__(self, total: int | None = None) -> None:
        self.total = INLINE_ALLOWANCE_BYTES if total is None else total
        self.held = 0
        self._taken: dict[tuple[int, str], int] = {}  # by attempt: (document, lease token)

    def take(self, doc: ClaimedDocument, size: int) -> bool:
        """Reserve ``size`` bytes for ``doc``'s attempt; False (nothing taken) if it does
        not fit, or ``size`` is over ``INLINE_SPOOL_MAX_BYTES``."""
        if size > INLINE_SPOOL_MAX_BYTES or self.held + size > self.total:
            return False
        key = (doc.id, doc.lease_token)
        self.give_back(*key)
        self._taken[key] = size
        self.held += size
        return True

    def give_back(self, document_id: int, lease_token: str) -> None:
        """Release what the attempt took, if anything (safe to call for any outcome)."""
        if self._taken:  # usually empty: called for every outcome that leaves the worker
            self.held -= self._taken.pop((document_id, lease_token), 0)


async def with_facts(
    ledger: Ledger,
    registry: ProcessorRegistry,
    context: ProcessorContext,
    docs: Sequence[ClaimedDocument],
) -> list[ClaimedDocument]:
    """``docs``, each with its dedup facts when its processor reads them. A failed read
    leaves them without: the processor then does the work and the finish still dedups."""
    wanting: list[ClaimedDocument] = []
    asks: dict[str, bool] = {}  # per batch: its documents share processor and options
    for doc in docs:
        if doc.batch_id not in asks:
            try:
                asks[doc.batch_id] = wants_facts(registry.get(context, doc.processor, doc.options))
            except Exception:  # an unusable processor: its documents report it themselves
                asks[doc.batch_id] = False
        if asks[doc.batch_id]:
            wanting.append(doc)
    if not wanting:
        return list(docs)

    async def read(conn: AsyncConnection, now: datetime) -> dict[int, DocumentFacts]:
        return await dedup_facts.read_facts(conn, wanting)

    try:
        # Brief: a few indexed reads for one claimed group (see Runner.run).
        facts = await ledger.runner.run(read, write=False, brief=True)
    except Exception as exc:
        log.warning("reading dedup facts for %d documents failed: %s", len(wanting), exc)
        return list(docs)
    return [msgspec.structs.replace(d, facts=facts[d.id]) if d.id in facts else d for d in docs]


def _rows(batch: Sequence[ChunkRecord], keyed: bool) -> list[ChunkRow]:
    return [
        ChunkRow(
            ordinal=c.ordinal,
            text=c.text,
            char_start=c.char_start,
            char_end=c.char_end,
            page=c.page,
            key=text_sha256(c.text) if keyed else None,
        )
        for c in batch
    ]


def _read_all(spool: ChunkSpool, keyed: bool) -> tuple[ChunkRow, ...]:
    rows: list[ChunkRow] = []
    for batch in iter_spool(spool.path, batch_size=STAGE_BLOCK):
        rows += _rows(batch, keyed)
    return tuple(rows)


def _read_small(spool: ChunkSpool, keyed: bool) -> tuple[int, tuple[ChunkRow, ...] | None]:
    """The spool's size, and its rows when it is small enough to read at once (in the same
    step as the size: most documents are small)."""
    size = os.path.getsize(spool.path)
    return size, _read_all(spool, keyed) if size <= INLINE_SPOOL_BYTES else None


def _next_rows(blocks: Iterator[list[ChunkRecord]], keyed: bool) -> list[ChunkRow] | None:
    batch = next(blocks, None)
    return None if batch is None else _rows(batch, keyed)


def needs_preparing(outcome: Outcome) -> bool:
    """Whether :func:`prepare` has anything to do for ``outcome`` (a chunk spool): most
    outcomes have none, and are recorded as they are."""
    return outcome.index is not None and outcome.index.spool is not None


async def prepare(
    ledger: Ledger,
    doc: ClaimedDocument,
    outcome: Outcome,
    allowance: InlineAllowance | None = None,
) -> Outcome:
    """``outcome`` ready for the finish: its spool's chunks in memory, or staged. Raises
    :class:`LeaseLost` when the lease went meanwhile, and a retryable ``store_failed``
    when the spool cannot be read or staged. A spool read in memory under ``allowance``
    holds its share until the caller gives it back."""
    if not needs_preparing(outcome):
        return outcome
    artifacts = outcome.index
    assert artifacts is not None and artifacts.spool is not None
    spool = artifacts.spool
    keyed = artifacts.model is not None
    started = time.perf_counter()
    try:
        size, rows = await SPOOL_STEPS.run(_read_small, spool, keyed)
        if rows is None and allowance is not None and allowance.take(doc, size):
            rows = await asyncio.to_thread(_read_all, spool, keyed)
        if rows is not None:
            prepared = msgspec.structs.replace(outcome, rows=rows)
        else:
            await _stage(ledger, doc, spool, keyed)
            prepared = outcome
    except (LeaseLost, asyncio.CancelledError):
        if allowance is not None:
            allowance.give_back(doc.id, doc.lease_token)
        raise
    except Exception as exc:
        if allowance is not None:
            allowance.give_back(doc.id, doc.lease_token)
        raise RetryableError(
            "store_failed",
            f"storing the result failed: {type(exc).__name__}: {exc}",
            systemic=False,
        ) from exc
    timings = (outcome.result or {}).get("timings")
    if isinstance(timings, dict):
        timings["store"] = round(time.perf_counter() - started, 6)
    return prepared


def _stager(
    doc: ClaimedDocument, rows: list[ChunkRow], *, first: bool
) -> Callable[[AsyncConnection, datetime], Awaitable[bool]]:
    async def stage(conn: AsyncConnection, now: datetime) -> bool:
        return await staged_chunks.stage_block(
            conn, document_id=doc.id, lease_token=doc.lease_token, rows=rows, first=first
        )

    return stage


async def _stage(ledger: Ledger, doc: ClaimedDocument, spool: ChunkSpool, keyed: bool) -> None:
    blocks: Iterator[list[ChunkRecord]] = iter_spool(spool.path, batch_size=STAGE_BLOCK)
    try:
        first = True
        expected_ordinal = 0
        while True:
            rows = await asyncio.to_thread(_next_rows, blocks, keyed)
            if rows is None and not first:
                return
            rows = rows or []
            for row in rows:  # the finish counts them; the order is checked here
                if row.ordinal != expected_ordinal:
                    raise staged_chunks.ChunksIncomplete(
                        f"document {doc.id}: chunk {row.ordinal} came where "
                        f"{expected_ordinal} was expected"
                    )
                expected_ordinal += 1

            if not await ledger.runner.run(_stager(doc, rows, first=first)):
                raise LeaseLost(f"document {doc.id}: the lease went while staging its chunks")
            if not rows:
                return
            first = False
    finally:
        blocks.close()  # type: ignore[attr-defined]


async def unstage(ledger: Ledger, doc: ClaimedDocument, outcome: Outcome) -> None:
    """Drop what ``outcome`` staged, once its finish failed (while the lease still holds:
    otherwise the rescue or the next attempt drops it)."""
    spool = outcome.index.spool if outcome.index is not None else None
    if spool is not None and outcome.rows is None:
        await ledger.runner.run(_stager(doc, [], first=True))


__all__ = [
    "INLINE_ALLOWANCE_BYTES",
    "INLINE_SPOOL_BYTES",
    "INLINE_SPOOL_MAX_BYTES",
    "STAGE_BLOCK",
    "InlineAllowance",
    "needs_preparing",
    "prepare",
    "unstage",
    "with_facts",
]
