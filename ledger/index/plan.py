"""The dry-run plan of a submission: which sources are new, changed, unchanged or gone.

The plan is decided by the real submission (:func:`ledger.queue.submit.submit`, with the
same unchanged check that skips indexed sources at submit) in the caller's transaction,
which the caller rolls back: a plan and the submission after it cannot disagree.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.models import batches, documents
from ledger.index.chunks import owner_matches
from ledger.model import BatchSpec, Plan, PlanGroup, SourceSpec, UnchangedSkip
from ledger.queue.submit import submit
from ledger.states import DocumentStatus

PLAN_CHUNK = 1_000


class _Group:
    def __init__(self, listed: int) -> None:
        self.count = 0
        self.sources: list[str] = []
        self._listed = listed

    def add(self, source: str) -> None:
        self.count += 1
        if len(self.sources) < self._listed:
            self.sources.append(source)

    def frozen(self) -> PlanGroup:
        return PlanGroup(self.count, self.sources)


def _holders(owner: str | None) -> Any:
    """The owner's documents whose chunks are the indexed ones for their source."""
    return (
        select(documents.c.id, documents.c.source)
        .join(batches, batches.c.id == documents.c.batch_id)
        .where(
            owner_matches(owner),
            documents.c.status == DocumentStatus.DONE.value,
            documents.c.superseded_by.is_(None),
            documents.c.removed_at.is_(None),
        )
    )


def _like_prefix(root: str) -> str:
    root = root.rstrip("/") + "/"
    escaped = root.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def plan(
    conn: AsyncConnection,
    spec: BatchSpec,
    sources: Iterable[SourceSpec],
    *,
    now: datetime,
    default_max_attempts: int,
    skip_unchanged: UnchangedSkip | None,
    roots: Sequence[str] | None,
    listed: int,
) -> Plan:
    """Submit ``sources`` (in the caller's transaction, to be rolled back) and classify them
    by what the submission did.

    unchanged: skipped at submit as indexed and unchanged, or already in the batch with the
    same facts; changed: already in the batch with other facts (processed again), or new to
    the batch while the owner has that source indexed; new: the rest. Finding what is
    *gone* needs the set of source names seen (the one thing held for the whole run); it is
    looked for under ``roots`` (path prefixes) or, without roots, among the documents of
    the batch ``spec.id``.
    """
    seen: dict[str, None] = {}  # the sources in the order given, each once

    def remembered() -> Iterator[SourceSpec]:
        for item in sources:
            seen[item.source] = None
            yield item

    result = await submit(
        conn,
        spec,
        remembered(),
        now=now,
        default_max_attempts=default_max_attempts,
        skip_unchanged=skip_unchanged,
    )
    batch_id = result.batch.id
    groups = {name: _Group(listed) for name in ("new", "changed", "unchanged", "gone")}
    names = iter(seen)
    while chunk := list(itertools.islice(names, PLAN_CHUNK)):
        rows = (
            await conn.execute(
                select(
                    documents.c.source,
                    documents.c.status,
                    documents.c.created_at,
                    documents.c.updated_at,
                ).where(documents.c.batch_id == batch_id, documents.c.source.in_(chunk))
            )
        ).all()
        by_source = {r.source: r for r in rows}
        added = [s for s in chunk if by_source[s].created_at == now]
        held: set[str] = set()
        if added:
            held_query = _holders(spec.owner).where(
                documents.c.source.in_(added), documents.c.batch_id != batch_id
            )
            held = {r.source for r in (await conn.execute(held_query)).all()}
        for source in chunk:
            row = by_source[source]
            if row.created_at == now:
                if row.status == DocumentStatus.SKIPPED.value:
                    groups["unchanged"].add(source)
                else:
                    groups["changed" if source in held else "new"].add(source)
            else:
                groups["changed" if row.updated_at == now else "unchanged"].add(source)

    scope: Any = None
    if roots:
        scope = _holders(spec.owner).where(
            or_(*(documents.c.source.like(_like_prefix(r), escape="\\") for r in roots))
        )
    elif spec.id is not None:
        scope = _holders(spec.owner).where(documents.c.batch_id == spec.id)
    if scope is not None:
        after = 0
        gone: set[str] = set()
        while True:
            page = (
                await conn.execute(
                    scope.where(documents.c.id > after).order_by(documents.c.id).limit(PLAN_CHUNK)
                )
            ).all()
            if not page:
                break
            for r in page:
                if r.source not in seen and r.source not in gone:
                    gone.add(r.source)  # report each gone source once
                    groups["gone"].add(r.source)
            after = page[-1].id
    return Plan(**{name: group.frozen() for name, group in groups.items()})
