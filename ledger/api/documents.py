"""Documents: a batch's documents page by page, one document with its attempts, failures."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter

from ledger.api.errors import ERROR_RESPONSES
from ledger.api.schemas import (
    BatchId,
    Cursor,
    DocumentDetail,
    DocumentPage,
    Failures,
)
from ledger.app import Ledger
from ledger.states import DocumentStatus

Limit = Annotated[int, Parameter(ge=1, le=1000, description="items per page")]
DocumentId = Annotated[int, Parameter(ge=1, le=2**63 - 1)]


class DocumentController(Controller):
    path = "/"
    tags = ("documents",)

    @get(
        "/batches/{batch_id:str}/documents",
        operation_id="listDocuments",
        responses=ERROR_RESPONSES,
        summary="A batch's documents in id order, filtered by status and error code",
    )
    async def list_documents(
        self,
        batch_id: BatchId,
        ledger: Ledger,
        owner: str | None,
        status: DocumentStatus | None = None,
        code: Annotated[str | None, Parameter(max_length=100)] = None,
        cursor: Cursor | None = None,
        limit: Limit = 100,
    ) -> DocumentPage:
        page = await ledger.reads.documents(
            batch_id, owner=owner, status=status, code=code, cursor=cursor, limit=limit
        )
        return DocumentPage.of(page)

    @get(
        "/documents/{document_id:int}",
        operation_id="getDocument",
        responses=ERROR_RESPONSES,
        summary="One document with every attempt made at it",
    )
    async def get_document(
        self, document_id: DocumentId, ledger: Ledger, owner: str | None
    ) -> DocumentDetail:
        document, attempts = await ledger.reads.document(document_id, owner=owner)
        return DocumentDetail(document=document.public(), attempts=[a.public() for a in attempts])

    @get(
        "/batches/{batch_id:str}/failures",
        operation_id="listFailures",
        responses=ERROR_RESPONSES,
        summary="A batch's failed documents grouped by error code, largest group first",
    )
    async def failures(self, batch_id: BatchId, ledger: Ledger, owner: str | None) -> Failures:
        groups = await ledger.reads.failures(batch_id, owner=owner)
        return Failures(
            batch_id=batch_id,
            total=sum(g.count for g in groups),
            groups=groups,
        )
