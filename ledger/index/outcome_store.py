"""The finish's index step: a document's outcome artifacts become its indexed text.

Runs inside the transaction that marks the document done or skipped, after the lease was
found still held, and touches only the database: the artifacts are data
(:class:`ledger.artifacts.IndexArtifacts`), the chunks either came in memory with the outcome
(a small spool the worker read before the transaction) or were staged by the worker in
short fenced transactions (:mod:`ledger.index.staged_chunks`). No file is read, parsed or
hashed here (tests/pipeline/test_finish_io.py holds the finish to that).

In that one transaction, as before: the document's chunks replace its own of an earlier
run, their vectors come from the embedding cache, the older documents of its source lose
theirs (superseded), and its sinks are told to mirror the new version. With ``dedup``, the
last dedup check is made here, under the lock: when another document of the owner holds
the same content by now, the document is recorded as skipped (``unchanged`` or
``duplicate``) instead, and what it staged is dropped. The outcomes of one finish group are
recorded one after the other but become ``done`` together at the end, so the check also asks
the group's :class:`GroupContents` for a copy recorded earlier in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import msgspec
from sqlalchemy import bindparam, delete
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.artifacts import ChunkRow, IndexArtifacts, skip_reason
from ledger.db import direct
from ledger.db.backends import backend_of
from ledger.db.models import chunks
from ledger.db.prepared import prepared
from ledger.index import chunks as index
from ledger.index import sink_rows, staged_chunks, vectors
from ledger.index.staged_chunks import ChunksIncomplete
from ledger.model import IndexedDocument, Outcome
from ledger.states import AttemptOutcome
from ledger.wording import plural

PARAMS_CHUNK = 1_000
CHUNK_COLUMNS = ("ordinal", "text", "char_start", "char_end", "page")


class Twin(NamedTuple):
    id: int
    source: str


@dataclass
class GroupContents:
    """The contents that earlier outcomes of one finish group indexed, by owner and hash.

    Their documents are not ``done`` until the group's endings are written, after every
    outcome's index step, so a copy recorded earlier in the same group is found here.
    """

    _held: dict[tuple[str | None, str], list[tuple[Twin, str | None]]] = field(default_factory=dict)

    def twin(self, owner: str | None, sha256: str, model: str | None) -> Twin | None:
        for twin, its_model in self._held.get((owner, sha256.lower()), []):
            if model is None or its_model == model:
                return twin
        return None

    def add(self, owner: str | None, sha256: str, model: str | None, twin: Twin) -> None:
        self._held.setdefault((owner, sha256.lower()), []).append((twin, model))


async def record(
    conn: AsyncConnection,
    outcome: Outcome,
    *,
    batch_id: str,
    source: str,
    owner: str | None,
    now: datetime,
    group: GroupContents | None = None,
) -> Outcome:
    """Record ``outcome.index`` for its document (see the module docstring), whose
    ``source`` and batch's ``owner`` the finish read under its lock; returns the outcome to
    record, which is a skip instead when the finish found a duplicate. ``group`` holds what
    the earlier outcomes of the same finish group indexed; this one is added."""
    artifacts = outcome.index
    assert artifacts is not None
    document_id = outcome.document_id
    if artifacts.dedup and outcome.outcome is AttemptOutcome.DONE:
        twin: Twin | IndexedDocument | None = await index.indexed_content(
            conn,
            batch_id=batch_id,
            sha256=artifacts.sha256,
            exclude_id=document_id,
            model=artifacts.model,
        )
        if twin is None and group is not None:
            twin = group.twin(owner, artifacts.sha256, artifacts.model)
        if twin is not None:
            same_source = twin.source == source
            await _content(conn, outcome, artifacts, batch_id, source, now, not same_source)
            if artifacts.spool is not None and outcome.rows is None:
                await staged_chunks.clear(conn, [document_id])
            kind = "unchanged" if same_source else "duplicate"
            return msgspec.structs.replace(
                outcome,
                outcome=AttemptOutcome.SKIPPED,
                result={
                    "reason": skip_reason(kind, twin.id),
                    "duplicate_of": twin.id,
                    "sha256": artifacts.sha256.lower(),
                },
                index=None,
                rows=None,
            )
    spool = artifacts.spool
    if spool is None:
        await _content(conn, outcome, artifacts, batch_id, source, now, artifacts.supersede)
        return outcome
    # Its own chunks of an earlier run: replaced below, so its sink rows stay as they are.
    await direct.execute(
        conn,
        prepared(
            conn,
            ("index_own_chunks",),
            lambda: delete(chunks).where(chunks.c.document_id == bindparam("p_id")),
        ),
        {"p_id": document_id},
    )
    if outcome.rows is None:
        await staged_chunks.attach(
            conn,
            document_id=document_id,
            batch_id=batch_id,
            lease_token=outcome.lease_token,
            expected=spool.count,
            model=artifacts.model,
            now=now,
        )
    else:
        await _insert(conn, document_id, batch_id, outcome.rows, spool.count, artifacts.model, now)
    await _content(conn, outcome, artifacts, batch_id, source, now, True)
    if group is not None and outcome.outcome is AttemptOutcome.DONE:
        group.add(owner, artifacts.sha256, artifacts.model, Twin(document_id, source))
    await sink_rows.enqueue(
        conn,
        sinks=artifacts.sinks,
        document_id=document_id,
        batch_id=batch_id,
        source=source,
        sha256=artifacts.sha256.lower(),
        now=now,
    )
    return outcome


async def _content(
    conn: AsyncConnection,
    outcome: Outcome,
    artifacts: IndexArtifacts,
    batch_id: str,
    source: str,
    now: datetime,
    supersede: bool,
) -> None:
    await index.record_content(
        conn,
        document_id=outcome.document_id,
        batch_id=batch_id,
        source=source,
        sha256=artifacts.sha256,
        size=artifacts.size,
        mtime_ns=artifacts.mtime_ns,
        supersede=supersede,
        now=now,
    )


async def _insert(
    conn: AsyncConnection,
    document_id: int,
    batch_id: str,
    rows: Sequence[ChunkRow],
    expected: int,
    model: str | None,
    now: datetime,
) -> None:
    """Store chunks the outcome carries; raises :class:`ChunksIncomplete` unless they are
    exactly ordinals ``0..expected-1`` in order (and ``VectorsIncomplete`` for a missing
    vector)."""
    if len(rows) != expected or any(r.ordinal != i for i, r in enumerate(rows)):
        raise ChunksIncomplete(
            f"document {document_id}: {plural(len(rows), 'chunk')} in order, {expected:,} expected"
        )
    for start in range(0, len(rows), PARAMS_CHUNK):
        block = rows[start : start + PARAMS_CHUNK]
        await backend_of(conn).insert_rows(
            conn,
            chunks,
            constants={"document_id": document_id, "batch_id": batch_id, "created_at": now},
            columns=CHUNK_COLUMNS,
            rows=[(r.ordinal, r.text, r.char_start, r.char_end, r.page) for r in block],
        )
        if model is not None:
            keys = [(r.ordinal, r.key) for r in block]
            if any(key is None for _, key in keys):
                raise ChunksIncomplete(f"document {document_id}: a chunk came without its key")
            await vectors.attach_vectors(
                conn,
                document_id=document_id,
                model=model,
                ordinals=[(o, k) for o, k in keys if k is not None],
                now=now,
            )


__all__ = ["GroupContents", "record"]
