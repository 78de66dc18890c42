"""Chunks out of the index: a batch's chunks as NDJSON, one document's chunks as pages.

``GET /batches/{id}/chunks`` streams ``application/x-ndjson``: one chunk per line in chunk
id order, read page by page (bounded memory whatever the batch's size), then one last line
``{"next_after": N}``: the cursor to pass as ``after=`` for the rest when ``limit`` cut the
stream short, or ``null`` when the batch has no more. A stream without that last line was
cut off: ask again with ``after=`` the last chunk id received. Each page is its own read
transaction: a stream is not a snapshot of a batch that is still being processed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.params import Parameter
from litestar.response import Stream
from msgspec import Struct

from ledger.api import policy
from ledger.api.errors import ERROR_RESPONSES
from ledger.api.schemas import BatchId
from ledger.app import Ledger
from ledger.index.chunk_reads import ChunkRecord

NDJSON = "application/x-ndjson"
STREAM_PAGE = 500  # chunks per query while streaming
ChunkId = Annotated[int, Parameter(ge=0, le=2**63 - 1, description="after this chunk id")]
DocumentId = Annotated[int, Parameter(ge=1, le=2**63 - 1)]


class DocumentChunks(Struct, kw_only=True):
    """A page of one document's chunks in order; ``next_after`` is null on the last."""

    batch_id: str
    document_id: int
    items: list[ChunkRecord]
    next_after: int | None


async def _ndjson(
    ledger: Ledger,
    batch_id: str,
    owner: str | None,
    *,
    after: int,
    limit: int | None,
    vectors: bool,
    model: str | None,
) -> AsyncIterator[bytes]:
    encoder = msgspec.json.Encoder()
    sent = 0
    while True:
        want = STREAM_PAGE if limit is None else min(STREAM_PAGE, limit - sent)
        if want <= 0:
            yield encoder.encode({"next_after": after}) + b"\n"
            return
        page = await ledger.index.batch_chunks(
            batch_id, owner=owner, after=after, limit=want, vectors=vectors, model=model
        )
        if page:
            yield b"".join(encoder.encode(c) + b"\n" for c in page)
            after = page[-1].chunk_id
            sent += len(page)
        if len(page) < want:
            yield encoder.encode({"next_after": None}) + b"\n"
            return


class ChunkController(Controller):
    path = "/batches/{batch_id:str}"
    tags = ("chunks",)

    @get(
        "/chunks",
        operation_id="streamBatchChunks",
        responses=ERROR_RESPONSES,
        media_type=NDJSON,
        summary="A batch's chunks as NDJSON, in chunk id order, with keyset paging",
        description=__doc__,
    )
    async def batch_chunks(
        self,
        request: Request[Any, Any, Any],
        batch_id: BatchId,
        ledger: Ledger,
        owner: str | None,
        after: ChunkId = 0,
        limit: Annotated[
            int | None,
            Parameter(ge=1, le=2**63 - 1, description="at most this many chunks (default: all)"),
        ] = None,
        vectors: Annotated[
            bool, Parameter(description="include each chunk's stored vectors, by model")
        ] = False,
        model: Annotated[
            str | None,
            Parameter(max_length=200, description="with vectors: only this model's vector"),
        ] = None,
    ) -> Stream:
        policy.check_query(request.query_params.keys())
        await ledger.reads.batch(batch_id, owner=owner)  # a 404 now, not an empty stream
        lines = _ndjson(
            ledger, batch_id, owner, after=after, limit=limit, vectors=vectors, model=model
        )
        return Stream(lines, media_type=NDJSON)

    @get(
        "/documents/{document_id:int}/chunks",
        operation_id="listDocumentChunks",
        responses=ERROR_RESPONSES,
        summary="One document's chunks in order, with their pages and offsets",
    )
    async def document_chunks(
        self,
        batch_id: BatchId,
        document_id: DocumentId,
        ledger: Ledger,
        owner: str | None,
        after: Annotated[
            int, Parameter(ge=-1, le=2**31, description="after this ordinal (-1: from the start)")
        ] = -1,
        limit: Annotated[int, Parameter(ge=1, le=1000, description="items per page")] = 100,
    ) -> DocumentChunks:
        page = await ledger.index.document_chunks(
            batch_id, document_id, owner=owner, after=after, limit=limit + 1
        )
        items = page[:limit]
        more = len(page) > limit
        return DocumentChunks(
            batch_id=batch_id,
            document_id=document_id,
            items=items,
            next_after=items[-1].ordinal if more else None,
        )
