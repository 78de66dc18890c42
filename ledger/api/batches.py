"""Batches: create (from server paths), list, progress, control, and file uploads."""

from __future__ import annotations

import asyncio
import functools
import hashlib
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.exceptions import ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import Parameter

from ledger.api import multipart, object_uploads, paths, policy
from ledger.api.errors import ERROR_RESPONSES
from ledger.api.schemas import (
    BatchCreate,
    BatchId,
    BatchPage,
    BatchUpdate,
    Cursor,
    PauseRequest,
    ProgressOut,
    RetryRequest,
    RetryResult,
    UploadedFile,
    UploadResult,
)
from ledger.app import Ledger
from ledger.embedders.profiles import profiles_for
from ledger.errors import Conflict, InvalidInput
from ledger.model import Batch, BatchSpec, SourceSpec
from ledger.path_patterns import compile_patterns
from ledger.processors.builtin import unchanged_skip
from ledger.queue.batch_edits import BatchChanges
from ledger.settings import Settings
from ledger.states import BatchFilter, BatchState
from ledger.storage.objects import client_for

MAX_OPTIONS_DEPTH = 32
Limit = Annotated[int, Parameter(ge=1, le=500, description="items per page")]


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


class _SourcesNeeded(Exception):
    """The ledger wanted the request's sources: the batch exists but no request made it."""


class _Deferred:
    """Sources not yet expanded: iterating them asks the caller to expand first."""

    def __iter__(self) -> Any:
        raise _SourcesNeeded


@dataclass
class _UploadOperation(Operation):
    """Documents the multipart body that the upload handler reads as a stream."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="one or many file parts; each becomes one document",
            content={
                "multipart/form-data": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        properties={
                            "files": Schema(
                                type=OpenAPIType.ARRAY,
                                items=Schema(type=OpenAPIType.STRING, format="binary"),  # type: ignore[arg-type]
                            )
                        },
                    )
                )
            },
        )


class BatchController(Controller):
    path = "/batches"
    tags = ("batches",)

    @post(
        "/",
        operation_id="createBatch",
        responses={
            **ERROR_RESPONSES,
            200: ResponseSpec(ProgressOut, description="The batch an identical request created"),
        },
        status_code=201,
        summary="Create a batch",
        description="Idempotent: resending the same body with the same id answers 200 with "
        "the batch; a different body with that id is a 409.",
    )
    async def create(
        self, data: BatchCreate, ledger: Ledger, settings: Settings, owner: str | None
    ) -> Response[ProgressOut]:
        if _depth(data.options) > MAX_OPTIONS_DEPTH:
            raise InvalidInput(f"options are nested deeper than {MAX_OPTIONS_DEPTH} levels")
        if data.glob is not None and not data.paths:
            raise InvalidInput("glob filters paths: give paths too")
        if (data.include or data.exclude) and not data.paths:
            raise InvalidInput("include and exclude filter paths: give paths too")
        try:
            patterns = compile_patterns(data.include, data.exclude)
        except InvalidInput as exc:  # well-formed, but not a pattern: 422 like the schema's
            raise ValidationException(str(exc)) from exc
        policy.check_batch(settings, data.processor, data.options)
        spec = BatchSpec(
            id=data.id,
            name=data.name,
            processor=data.processor,
            options=data.options,
            priority=data.priority,
            max_attempts=data.max_attempts,
            owner=owner,
        )
        fingerprint = _fingerprint(data)
        if data.id is not None:
            # A resent request must not walk the folders again: ask the ledger first.
            try:
                result = await ledger.queue.create_batch(spec, _Deferred(), fingerprint=fingerprint)
                return await _created(ledger, owner, result.batch, result.created)
            except _SourcesNeeded:
                pass
        sources = await asyncio.to_thread(
            functools.partial(
                paths.expand,
                object_roots=settings.object_roots_for(owner),
                store=functools.partial(client_for, settings),
            ),
            data.paths,
            settings.roots_for(owner),
            data.glob,
            patterns,
        )
        try:
            result = await ledger.queue.create_batch(
                msgspec.structs.replace(spec, roots=tuple(sources.roots)),
                sources,
                fingerprint=fingerprint,
                skip_unchanged=unchanged_skip(spec, profiles_for(settings)),
            )
        finally:
            sources.close()
        return await _created(
            ledger, owner, result.batch, result.created, sources.skipped, sources.skipped_count
        )

    @get(
        "/",
        operation_id="listBatches",
        responses=ERROR_RESPONSES,
        summary="List batches, newest first",
    )
    async def list_batches(
        self,
        ledger: Ledger,
        owner: str | None,
        state_filter: Annotated[
            str | None,
            Parameter(
                query="state",
                description="only batches with this status; active: pending or running",
                schema_extra={"enum": [f.value for f in BatchFilter]},
            ),
        ] = None,
        cursor: Cursor | None = None,
        limit: Limit = 50,
    ) -> BatchPage:
        state, status = batch_filter(state_filter).as_query() if state_filter else (None, None)
        page = await ledger.reads.batches(
            owner=owner, state=state, status=status, cursor=cursor, limit=limit
        )
        return BatchPage.of(page)

    @get(
        "/{batch_id:str}",
        operation_id="getBatch",
        responses=ERROR_RESPONSES,
        summary="A batch with its progress",
    )
    async def get_batch(self, batch_id: BatchId, ledger: Ledger, owner: str | None) -> ProgressOut:
        return ProgressOut.from_progress(await ledger.reads.progress(batch_id, owner=owner))

    @patch(
        "/{batch_id:str}",
        operation_id="updateBatch",
        responses=ERROR_RESPONSES,
        summary="Change a batch's name, priority or max_attempts",
        description="Fields left out stay as they are; the next claim uses the new values.",
    )
    async def update(
        self, batch_id: BatchId, data: BatchUpdate, ledger: Ledger, owner: str | None
    ) -> ProgressOut:
        changes = BatchChanges(
            name=data.name, priority=data.priority, max_attempts=data.max_attempts
        )
        await ledger.control.update_batch(batch_id, changes, owner=owner)
        return ProgressOut.from_progress(await ledger.reads.progress(batch_id, owner=owner))

    @post(
        "/{batch_id:str}/pause",
        operation_id="pauseBatch",
        responses=ERROR_RESPONSES,
        status_code=200,
    )
    async def pause(
        self,
        batch_id: BatchId,
        ledger: Ledger,
        owner: str | None,
        data: PauseRequest | None = None,
    ) -> Batch:
        reason = data.reason if data is not None else None
        return await ledger.control.pause(batch_id, owner=owner, reason=reason)

    @post(
        "/{batch_id:str}/resume",
        operation_id="resumeBatch",
        responses=ERROR_RESPONSES,
        status_code=200,
    )
    async def resume(self, batch_id: BatchId, ledger: Ledger, owner: str | None) -> Batch:
        return await ledger.control.resume(batch_id, owner=owner)

    @post(
        "/{batch_id:str}/cancel",
        operation_id="cancelBatch",
        responses=ERROR_RESPONSES,
        status_code=200,
    )
    async def cancel(self, batch_id: BatchId, ledger: Ledger, owner: str | None) -> Batch:
        return await ledger.control.cancel(batch_id, owner=owner)

    @post(
        "/{batch_id:str}/retry",
        operation_id="retryFailed",
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Put failed documents (optionally only those with one error code) back",
    )
    async def retry(
        self,
        batch_id: BatchId,
        ledger: Ledger,
        owner: str | None,
        data: RetryRequest | None = None,
    ) -> RetryResult:
        code = data.code if data is not None else None
        count = await ledger.control.retry_failed(batch_id, owner=owner, code=code)
        batch = await ledger.reads.batch(batch_id, owner=owner)
        return RetryResult(retried=count, batch=batch)


class UploadController(Controller):
    """Mounted on its own router so that it gets the upload size limit, not the JSON one."""

    path = "/batches"
    tags = ("batches",)

    @post(
        "/{batch_id:str}/files",
        operation_id="uploadFiles",
        responses=ERROR_RESPONSES,
        status_code=201,
        summary="Upload files into a batch (multipart/form-data, streamed to storage)",
        description="Each file part becomes one document whose source is the stored file; "
        "the client's file name is kept as meta.filename. Two parts with the same name are "
        "two documents.",
        operation_class=_UploadOperation,
    )
    async def upload(
        self,
        request: Request[Any, Any, Any],
        batch_id: BatchId,
        ledger: Ledger,
        settings: Settings,
        owner: str | None,
    ) -> UploadResult:
        batch = await ledger.reads.batch(batch_id, owner=owner)
        if batch.state == BatchState.CANCELLED:
            raise Conflict(f"batch {batch_id!r} is cancelled; create a new batch")
        destination: multipart.Destination = (
            object_uploads.ObjectFolder(settings, owner, batch.id)
            if settings.storage_url is not None
            else multipart.LocalFolder(
                settings.storage
                / multipart.safe_component(owner)
                / multipart.safe_component(batch_id)
            )
        )
        stored = await multipart.store_files(
            request.stream(),
            request.headers.get("content-type"),
            destination,
            max_files=settings.max_upload_files,
        )
        spec = BatchSpec(
            id=batch.id,
            name=batch.name,
            processor=batch.processor,
            options=dict(batch.options),
            priority=batch.priority,
            max_attempts=batch.max_attempts,
            owner=batch.owner,
        )
        sources = [
            SourceSpec(
                source=f.source,
                size=f.size,
                mtime_ns=f.mtime_ns,
                sha256=f.sha256,
                meta={"filename": f.filename, "content_type": f.content_type}
                | ({"etag": f.etag} if f.etag is not None else {}),
            )
            for f in stored
        ]
        try:
            result = await ledger.queue.submit(spec, sources)
        except BaseException:
            await destination.remove(stored)
            raise
        return UploadResult(
            batch=result.batch,
            files=[
                UploadedFile(
                    source=source.source,
                    filename=f.filename,
                    size=f.size,
                    sha256=f.sha256,
                    content_type=f.content_type,
                )
                for f, source in zip(stored, sources, strict=True)
            ],
            added=result.added,
        )


async def _created(
    ledger: Ledger,
    owner: str | None,
    batch: Batch,
    created: bool,
    skipped: list[tuple[str, str]] | None = None,
    skipped_count: int = 0,
) -> Response[ProgressOut]:
    """The same shape as ``GET /batches/{id}``, so a client parses one answer for a batch."""
    progress = await ledger.reads.progress(batch.id, owner=owner)
    answer = ProgressOut.from_progress(progress, skipped, skipped_count)
    return Response(answer, status_code=201 if created else 200)


def batch_filter(word: str) -> BatchFilter:
    """The ``state`` query parameter, refused with the list of choices (not just "invalid")."""
    try:
        return BatchFilter(word)
    except ValueError:
        choices = ", ".join(f.value for f in BatchFilter)
        raise ValidationException(
            extra=[
                {
                    "key": "state",
                    "source": "query",
                    "message": f"unknown state {word!r}; choose one of {choices}",
                }
            ]
        ) from None


def _fingerprint(data: BatchCreate) -> str:
    """What makes two create requests the same; empty ``include``/``exclude`` lists are left
    out so that requests made before they existed keep their fingerprint."""
    body = msgspec.structs.asdict(data)
    for key in ("include", "exclude"):
        if not body[key]:
            del body[key]
    return hashlib.sha256(msgspec.json.encode(body, order="sorted")).hexdigest()
