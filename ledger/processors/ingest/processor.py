"""The ``ingest`` processor: a file in, its chunks in the index, exactly once.

Per document:

1. **Roots.** If roots are configured (``allowed_roots`` or any tenant's ``tenant_roots``:
   their union, as the API already confined each request to its tenant's own) or the batch
   options have ``roots``,
   the source's real path (symbolic links resolved) must lie under one of them (or under
   the upload storage), else ``outside_roots``. The resolved path is what gets read.
2. **Dedup** (unless the batch options say ``reprocess: true``). *Unchanged*: a document of
   the same owner and source holds chunks, its recorded size and mtime equal the file's,
   and its SHA-256 is known: skipped without reading the file. Otherwise the file is hashed
   (in a thread; an upload's known hash is used as is) and if a document of the same owner
   holds chunks of that content it is skipped as *unchanged* (same source) or a
   *duplicate* (another source), with ``duplicate_of`` naming that document.
3. **Extract** with ``process_file`` in the worker's process pool (time and memory limits)
   into a chunk spool; the hash found in step 2 is passed as the expected one, so the text
   stored is the text of the content that was checked. *Small text in process*: a file of
   at most ``INLINE_MAX_BYTES`` that turns out to be plain text or Markdown is decoded and
   chunked in a thread of the worker itself. Those are read by Python's own codecs, with no
   C parser that could crash or hang, in time and memory bounded by that size; starting a
   pool process (an interpreter start) for them cost more than the work. Anything detected
   as PDF, DOCX or HTML, and every larger file, goes to the pool as before.
4. **Store**: ``Done(result, index=IndexArtifacts(spool=...))``: the outcome is data, a
   handle on the chunk spool. The worker stages the chunks before the finish (or reads a
   small spool into memory); the transaction that marks the document done attaches them,
   replaces the chunks of older documents of the same source, and, as the last dedup
   check, records the document as a duplicate instead when another document of the owner
   came to hold the same content. The spool is deleted when that transaction is over.

Dedup facts (the holders of the source, and of the content when its hash is known at
claim) come with the document (``doc.facts``): the worker reads them for its whole claimed
group at once, so the processor never reads the ledger.

A source that is an object URL (``s3://bucket/key``) must lie inside the configured object
roots when any roots are in force (else ``outside_roots``); it is copied to a local file
first (:mod:`ledger.processors.ingest.object_source`, with its ETag checked) and that copy
goes through the steps above, then is deleted with the spool.

A zip or tar archive or an email (by name: :mod:`ledger.processors.ingest.containers`) goes
another way before all of this: its members are extracted and become child documents of the
batch in the transaction that marks it done (:mod:`ledger.processors.ingest.container_step`).

Before all of this, a file that is not a document (:mod:`ledger.processors.ingest.selection`:
an image, font, script, archive, lock file... by its name, for an upload its original file
name, or by its first bytes) is skipped with reason ``excluded_type: <what it is>``, not
failed, unless the batch options say ``include_all_types: true`` (then only the content
check applies, and a ``.js`` is read as text).

Batch options: ``reprocess`` (bool), ``roots`` (list of folders), ``include_all_types``
(bool), and any field of ``IngestOptions`` (``chunk_size``, ``chunk_overlap``, caps),
validated by :class:`ledger.processors.ingest.config.IngestConfig`. The file work of steps
1 and 2 (roots, status, name, first bytes, hash) and the spool files are
:mod:`ledger.processors.ingest.files`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger.artifacts import NO_FACTS, ChunkSpool, IndexArtifacts, etag_of, skip_reason
from ledger.embedders import build_embedder
from ledger.embedders.profiles import profiles_for
from ledger.errors import InvalidInput
from ledger.loop_io import FileSteps
from ledger.model import JSON
from ledger.processors.base import (
    Document,
    Done,
    Processor,
    ProcessorContext,
    Skip,
    wanting_facts,
)
from ledger.processors.ingest import container_step, embedding, object_source
from ledger.processors.ingest.config import IngestConfig
from ledger.processors.ingest.container_step import container_result, with_children
from ledger.processors.ingest.containers import ContainerKind, container_kind
from ledger.processors.ingest.detect import DocType
from ledger.processors.ingest.files import (
    chained,
    content_sha256,
    display_name,
    file_status,
    locate,
    locate_and_judge,
    remover,
    spool_batches,
    spool_dir_for,
    status_and_judge,
)
from ledger.processors.ingest.pipeline import (
    IngestOutcome,
    NeedsIsolation,
    StageTimings,
    process_file,
)
from ledger.processors.ingest.selection import excluded_by_name, excluded_reason
from ledger.processors.ingest.spool import remove_stale_partials
from ledger.sinks.profiles import profiles_for as sink_profiles_for
from ledger.storage import objects
from ledger.storage.urls import is_object_url

_NO_TIMINGS = StageTimings(read=0.0, extract=0.0, chunk=0.0, spool=0.0)
# Text and Markdown files up to this size are processed in this process, not in the pool
# (step 3): on the event loop up to LOOP_MAX_BYTES while files answer fast, else in a thread.
INLINE_MAX_BYTES = 256 * 1024
LOOP_MAX_BYTES = 32 * 1024
INLINE_TYPES = frozenset({DocType.TEXT, DocType.MARKDOWN})
# How fast documents' files answer, for every ingest processor of this process.
SOURCE_STEPS = FileSteps()


def make_ingest_processor(context: ProcessorContext, options: JSON) -> Processor:
    """The ``ingest`` processor for a batch with these options (see the module docstring)."""
    settings = context.settings
    # Defence in depth behind the API's per-tenant check: any configured root will do here.
    allowed = [str(root) for root in settings.all_roots]
    config = IngestConfig.from_options(
        options,
        allowed_roots=allowed,
        embedders=profiles_for(settings),
        sinks=sink_profiles_for(settings),
    )
    if config.roots:
        # Uploaded files live in the ledger's storage: always readable when roots apply.
        config = dataclasses.replace(
            config, roots=(*config.roots, os.path.realpath(settings.storage))
        )
    spool_dir = spool_dir_for(context)
    # A batch with sinks processes every source (as reprocess does), so each source's
    # version is one of its own documents, which its sinks then mirror.
    dedup = not config.reprocess and not config.sinks
    # Spools older than any attempt can last were left by killed workers or children.
    stale_after = max(3600.0, context.task_timeout + 2 * settings.lease_seconds)
    remove_stale_partials(spool_dir, stale_after, complete=True)
    spec = config.embedder
    model = spec.model if spec is not None else None
    stage_dir = embedding.stage_dir_for(Path(settings.home)) if spec is not None else ""
    if spec is not None:
        embedding.sweep_stage(stage_dir)

    # Objects must lie inside the configured buckets whenever any roots are in force.
    object_roots = list(settings.all_object_roots)
    confined = bool(config.roots or object_roots)
    if settings.storage_url is not None:  # uploads the API stored: always readable
        object_roots.append(settings.storage_url)

    async def ingest(doc: Document) -> Done | Skip:
        if not is_object_url(doc.source):
            return await _ingest(doc, None)
        # Judged by name before a byte is fetched; an archive or email is a container, not
        # an excluded type (as in _ingest, which looks at containers first).
        name = display_name(doc)
        if not config.include_all_types and container_kind(name) is None:
            what = excluded_by_name(name)
            if what is not None:
                return Skip(excluded_reason(what))
        url = object_source.check_roots(doc.source, object_roots, confined)
        copy = await asyncio.to_thread(
            object_source.fetch,
            objects.client_for(settings),
            doc,
            url,
            spool_dir,
            config.ingest.max_file_bytes,
        )
        try:
            output = await _ingest(doc, copy)
        except BaseException:
            object_source.remove(copy)
            raise
        return dataclasses.replace(output, cleanup=chained(output.cleanup, remover(copy)))

    async def _ingest(doc: Document, copy: str | None) -> Done | Skip:
        """Ingest ``doc`` from its source, or from ``copy``: a local copy of its object."""
        started = time.perf_counter()
        container = container_kind(display_name(doc))
        if container is not None:
            return await _container(doc, container, started, copy)
        if not config.include_all_types:
            what = excluded_by_name(display_name(doc))
            if what is not None:
                return Skip(excluded_reason(what))
        if copy is None:
            path, before, what = await SOURCE_STEPS.run(locate_and_judge, doc.source, config.roots)
        else:
            path = copy
            before, what = await asyncio.to_thread(status_and_judge, copy)
        if what is not None:
            return Skip(excluded_reason(what))
        sha256 = doc.sha256.lower() if doc.sha256 else None
        hash_seconds = 0.0
        if dedup and before is not None:
            facts = doc.facts or NO_FACTS
            holder = facts.source_holder(model)
            if holder is not None and holder.unchanged(
                size=before.st_size,
                mtime_ns=before.st_mtime_ns,
                etag=etag_of(doc.meta),
                sha256=sha256,
            ):
                return Skip(
                    skip_reason("unchanged", holder.id),
                    {"duplicate_of": holder.id, "sha256": holder.sha256},
                )
            # Hashed here only when a known holder could match: a duplicate of content
            # nobody was known to hold at claim is caught by the finish instead.
            if sha256 is None and holder is not None:
                hashed = time.perf_counter()
                sha256 = await asyncio.to_thread(content_sha256, path)
                hash_seconds = time.perf_counter() - hashed
            twin = facts.content_holder(sha256, model) if sha256 is not None else None
            if twin is not None:
                same_source = twin.source == doc.source
                kind = "unchanged" if same_source else "duplicate"
                assert sha256 is not None
                return Skip(
                    skip_reason(kind, twin.id),
                    {"duplicate_of": twin.id, "sha256": sha256},
                    index=IndexArtifacts(
                        sha256=sha256,
                        size=before.st_size,
                        mtime_ns=before.st_mtime_ns,
                        supersede=not same_source,
                    ),
                )
        if spec is not None:
            kept = await _staged(doc, path, sha256)
            if kept is not None:
                return await _embedded(doc, kept, before, started, started, hash_seconds)
        job = functools.partial(
            process_file,
            path,
            expected_size=doc.size,
            expected_mtime_ns=doc.mtime_ns,
            expected_sha256=sha256,
            options=config.ingest,
            spool_dir=spool_dir,
        )
        extract_started = time.perf_counter()
        outcome = await _extract(job, None if before is None else before.st_size)
        if spec is not None:
            return await _embedded(doc, outcome, before, started, extract_started, hash_seconds)
        remove = remover(outcome.spool_path)
        try:
            return _done(doc, outcome, before, started, extract_started, hash_seconds, remove)
        except BaseException:
            remove()
            raise

    async def _extract(job: Callable[..., IngestOutcome], size: int | None) -> IngestOutcome:
        """Text and Markdown up to INLINE_MAX_BYTES in this process (on the loop up to
        LOOP_MAX_BYTES, see ``ledger.loop_io``), anything else in the pool (or a thread)."""
        if size is not None and size <= INLINE_MAX_BYTES:
            inline = functools.partial(job, only_types=INLINE_TYPES)
            try:
                if size <= LOOP_MAX_BYTES:
                    return await SOURCE_STEPS.run(inline)
                return await asyncio.to_thread(inline)
            except NeedsIsolation:
                pass
        if context.pool is None:
            return await asyncio.to_thread(job)
        return await context.pool.run(job, timeout=context.task_timeout)

    async def _container(
        doc: Document, kind: ContainerKind, started: float, copy: str | None
    ) -> Done:
        """An archive or an email (from its source, or from ``copy``: a local copy of its
        object): its members become child documents (container_step)."""
        if copy is None:
            path, before = await asyncio.to_thread(locate, doc.source, config.roots)
        else:
            path, before = copy, await asyncio.to_thread(file_status, copy)
        expansion = await container_step.expand(context, doc, kind, path, config.ingest)
        try:
            expansion = await container_step.store_members(settings, doc, expansion)
            body = await container_step.index_body(context, expansion, config.ingest, spool_dir)
            if body is None:
                index = IndexArtifacts(
                    sha256=expansion.sha256,
                    size=expansion.size,
                    mtime_ns=before.st_mtime_ns if before is not None else None,
                )
                done = Done(container_result(expansion), index=index)
            elif spec is not None:
                done = await _embedded(doc, body, before, started, started, 0.0)
            else:
                remove = remover(body.spool_path)
                done = _done(doc, body, before, started, started, 0.0, remove)
            if done.index is not None:
                # A container is never a duplicate: its members must become documents.
                done = dataclasses.replace(done, index=dataclasses.replace(done.index, dedup=False))
            return with_children(done, expansion, settings, doc.id)
        except BaseException:
            container_step.member_remover(expansion, settings)()
            raise

    async def _staged(doc: Document, path: str, sha256: str | None) -> IngestOutcome | None:
        """The kept outcome of an earlier attempt whose embedding failed, if the file
        still has the content it was made from."""
        if not await asyncio.to_thread(embedding.has_staged, stage_dir, doc.id):
            return None
        if sha256 is None:
            sha256 = await asyncio.to_thread(content_sha256, path)
        if sha256 is None:
            return None
        return await asyncio.to_thread(embedding.staged, stage_dir, doc.id, sha256)

    async def _embedded(
        doc: Document,
        outcome: IngestOutcome,
        before: os.stat_result | None,
        started: float,
        extract_started: float,
        hash_seconds: float,
    ) -> Done:
        """Embed the outcome's chunks into the cache, then ``Done`` with the spool, whose
        chunks get their vectors from the cache. On failure the spool is staged for the
        next attempt."""
        assert spec is not None
        cache = context.vectors
        if cache is None:
            raise InvalidInput("embedding needs the ledger's embedding cache")
        try:
            embedder = build_embedder(spec)
            stats = await embedding.embed_chunks(cache, embedder, spool_batches(outcome.spool_path))
        except BaseException as exc:
            if isinstance(exc, Exception) and getattr(exc, "retryable", False):
                await asyncio.to_thread(embedding.stage, stage_dir, doc.id, outcome)
            else:
                remover(outcome.spool_path)()
            raise
        spool_remove = remover(outcome.spool_path)
        unstage = embedding.unstager(stage_dir, doc.id)

        def remove() -> None:
            spool_remove()
            unstage()

        try:
            done = _done(doc, outcome, before, started, extract_started, hash_seconds, remove)
        except BaseException:
            remove()
            raise
        assert isinstance(done.result.get("timings"), dict)
        done.result["timings"]["embed"] = round(stats.seconds, 6)
        done.result.update(
            embedding_model=spec.model,
            embedded=stats.embedded,
            cache_hits=stats.cache_hits,
            reused_chunks=outcome.timings == _NO_TIMINGS,
        )
        return done

    def _done(
        doc: Document,
        outcome: IngestOutcome,
        before: os.stat_result | None,
        started: float,
        extract_started: float,
        hash_seconds: float,
        remove: Any,
    ) -> Done:
        timings: dict[str, float] = {
            "hash": round(hash_seconds, 6),
            "read": round(outcome.timings.read, 6),
            "extract": round(outcome.timings.extract, 6),
            "chunk": round(outcome.timings.chunk, 6),
            "spool": round(outcome.timings.spool, 6),
            "pool": round(time.perf_counter() - extract_started, 6),
            "store": 0.0,
            "total": round(time.perf_counter() - started, 6),
        }
        result: JSON = {
            "type": outcome.type,
            "encoding": outcome.encoding,
            "pages": outcome.pages,
            "characters": outcome.characters,
            "chunks": outcome.chunks,
            "size": outcome.size,
            "sha256": outcome.sha256,
            "timings": timings,
        }

        same_file = before is not None and before.st_size == outcome.size
        index = IndexArtifacts(
            sha256=outcome.sha256,
            size=outcome.size,
            mtime_ns=before.st_mtime_ns if same_file and before is not None else None,
            spool=ChunkSpool(outcome.spool_path, outcome.chunks, outcome.sha256),
            supersede=True,
            model=model,
            sinks=config.sinks,
            dedup=dedup,
        )
        return Done(result, index=index, cleanup=remove)

    return wanting_facts(ingest) if dedup else ingest
