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
4. **Store**: ``Done(result, write)``; the write streams the spool into ``chunks`` inside
   the transaction that marks the document done, and replaces the chunks of older
   documents of the same source. The spool is deleted when that transaction is over.

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
(bool), and any field of ``IngestOptions`` (``chunk_size``, ``chunk_overlap``, caps).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import stat
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ledger.embedders import EmbedderSpec, build_embedder
from ledger.embedders.profiles import profiles_for
from ledger.errors import InvalidInput, PermanentError
from ledger.index.chunks import skip_reason
from ledger.processors.base import Document, Done, Processor, ProcessorContext, Skip
from ledger.processors.ingest import container_step, embedding, object_source
from ledger.processors.ingest.chunking import ChunkRecord
from ledger.processors.ingest.container_step import container_result, with_children
from ledger.processors.ingest.containers import ContainerKind, container_kind
from ledger.processors.ingest.detect import HEAD_BYTES, DocType
from ledger.processors.ingest.options import IngestOptions
from ledger.processors.ingest.pipeline import (
    IngestOutcome,
    NeedsIsolation,
    StageTimings,
    process_file,
    sha256_file,
)
from ledger.processors.ingest.selection import (
    excluded_by_content,
    excluded_by_name,
    excluded_reason,
)
from ledger.processors.ingest.spool import iter_spool, remove_stale_partials
from ledger.records import JSON, Cleanup
from ledger.sinks.base import SinkProfile
from ledger.sinks.profiles import chosen_sinks
from ledger.sinks.profiles import profiles_for as sink_profiles_for
from ledger.storage import objects
from ledger.storage.urls import is_object_url

STORE_BATCH = 1_000  # chunks per INSERT: bounds the memory of storing a huge document
OUTSIDE_ROOTS = "outside_roots"
_NO_TIMINGS = StageTimings(read=0.0, extract=0.0, chunk=0.0, spool=0.0)
_INGEST_FIELDS = {f.name for f in dataclasses.fields(IngestOptions)}
_OWN_OPTIONS = {"reprocess", "roots", "embedder", "include_all_types", "sinks"}
MIN_CHUNK_SIZE = 64  # characters: the smallest chunk_size a batch may ask for
DEFAULT_CHUNK_SIZE = IngestOptions().chunk_size
DEFAULT_OVERLAP_RATIO = 0.15  # chunk_overlap / chunk_size when the size is derived
# Text and Markdown files up to this size are processed in a thread, not in the pool (step 3).
INLINE_MAX_BYTES = 256 * 1024
INLINE_TYPES = frozenset({DocType.TEXT, DocType.MARKDOWN})


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    """A batch's ingest options, validated."""

    ingest: IngestOptions
    reprocess: bool
    roots: tuple[str, ...]  # real paths; empty: no containment check
    embedder: EmbedderSpec | None = None
    include_all_types: bool = False  # True: no file is excluded by its name
    sinks: tuple[str, ...] = ()  # sink profiles mirroring the chunks

    @classmethod
    def from_options(
        cls,
        options: JSON,
        *,
        allowed_roots: Sequence[str] = (),
        embedders: Mapping[str, EmbedderSpec | None] | None = None,
        sinks: Mapping[str, SinkProfile] | None = None,
    ) -> IngestConfig:
        """The validated options; ``embedders`` are the profiles an ``embedder`` name may
        pick (default: the built-in ones), ``sinks`` those a ``sinks`` name may (None: the
        names are not checked)."""
        unknown = set(options) - _INGEST_FIELDS - _OWN_OPTIONS
        if unknown:
            raise InvalidInput(
                f"unknown ingest options: {', '.join(sorted(unknown))}; known: "
                + ", ".join(sorted(_INGEST_FIELDS | _OWN_OPTIONS))
            )
        reprocess = options.get("reprocess", False)
        if not isinstance(reprocess, bool):
            raise InvalidInput("option reprocess must be true or false")
        include_all_types = options.get("include_all_types", False)
        if not isinstance(include_all_types, bool):
            raise InvalidInput("option include_all_types must be true or false")
        roots = options.get("roots", [])
        if not isinstance(roots, list) or not all(isinstance(r, str) and r for r in roots):
            raise InvalidInput("option roots must be a list of folders")
        values = {k: v for k, v in options.items() if k in _INGEST_FIELDS}
        for key, value in values.items():
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidInput(f"option {key} must be an integer")
        _check_chunking(values)
        chosen = [*allowed_roots, *roots] if (allowed_roots or roots) else []
        embedder = EmbedderSpec.from_options(options.get("embedder"), embedders)
        if embedder is not None:
            values = _sized_for(embedder, values)
        chosen_sink_names = chosen_sinks(
            options.get("sinks"), sinks, has_embedder=embedder is not None
        )
        return cls(
            ingest=IngestOptions(**values),
            reprocess=reprocess,
            roots=tuple(os.path.realpath(r) for r in chosen),
            embedder=embedder,
            include_all_types=include_all_types,
            sinks=chosen_sink_names,
        )


def _check_chunking(values: dict[str, Any]) -> None:
    """Bounds on the chunking a batch may ask for: a tiny chunk size multiplies the rows one
    document makes (a 22 KB file at ``chunk_size: 1`` made 18,890 chunks)."""
    size = values.get("chunk_size", DEFAULT_CHUNK_SIZE)
    if size < MIN_CHUNK_SIZE:
        raise InvalidInput(f"option chunk_size must be at least {MIN_CHUNK_SIZE}, not {size}")
    overlap = values.get("chunk_overlap")
    if overlap is not None and not 0 <= overlap <= size // 2:
        raise InvalidInput(
            f"option chunk_overlap must be from 0 to half of chunk_size ({size // 2}), "
            f"not {overlap}"
        )


def _sized_for(embedder: EmbedderSpec, values: dict[str, Any]) -> dict[str, Any]:
    """Chunking options that keep every chunk within the embedder's input limit: the chunk
    size defaults to ``embedder.chunk_chars`` (when that is below the usual size); a larger
    size asked for explicitly is refused rather than silently truncated by the embedder."""
    limit = embedder.chunk_chars
    size = values.get("chunk_size")
    if size is not None and size > limit:
        raise InvalidInput(
            f"chunk_size {size} is more than the embedder takes: {embedder.max_tokens} tokens "
            f"at {embedder.chars_per_token:g} characters per token is {limit} characters; "
            "lower chunk_size or set the embedder's chars_per_token"
        )
    default = IngestOptions()
    if size is None and limit < default.chunk_size:
        values = {**values, "chunk_size": limit}
        if "chunk_overlap" not in values:
            values["chunk_overlap"] = min(default.chunk_overlap, int(limit * DEFAULT_OVERLAP_RATIO))
    return values


def _inside(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def resolve_source(source: str, roots: Sequence[str]) -> str:
    """The path to read for ``source``: as given, or, when ``roots`` are in force, its real
    path, which must lie under one of them (a symbolic link may not lead out)."""
    if not roots:
        return source
    real = os.path.realpath(source)
    if not _inside(real, roots):
        raise PermanentError(
            OUTSIDE_ROOTS, f"{source} resolves to {real}, outside the allowed folders"
        )
    return real


def _stat(path: str) -> os.stat_result | None:
    """The file's status, or None when it is not a readable regular file (then nothing is
    looked up or hashed, and ``process_file`` reports why, with the right code)."""
    try:
        result = os.stat(path)
    except OSError:
        return None
    return result if stat.S_ISREG(result.st_mode) else None


def _locate(source: str, roots: Sequence[str]) -> tuple[str, os.stat_result | None]:
    """Resolve and stat in one trip to a thread (an unchanged re-run does little else)."""
    path = resolve_source(source, roots)
    return path, _stat(path)


def display_name(doc: Document) -> str:
    """The name a document is judged by: an upload's original file name, else its source
    (an upload's storage name is random and says nothing about what it holds)."""
    meta = doc.meta if isinstance(doc.meta, dict) else {}
    # A member of an archive or email is judged by its path inside it (its file's name is
    # the ledger's own).
    for key in ("member_path", "filename"):
        name = meta.get(key)
        if isinstance(name, str) and name:
            return name
    return doc.source


def _excluded_content(path: str) -> str | None:
    """What the file is by its first bytes, when that is not a document; None when it may
    be one or cannot be read (then ``process_file`` reports why, with the right code)."""
    try:
        with open(path, "rb") as file:
            head = file.read(HEAD_BYTES)
    except OSError:
        return None
    return excluded_by_content(head)


def _hash(path: str) -> str | None:
    try:
        return sha256_file(path)[0]
    except (OSError, PermanentError):
        return None  # gone or unreadable since: process_file reports it


async def _spool_batches(path: str) -> AsyncIterator[list[ChunkRecord]]:
    """The spool's chunks in batches, each read in a thread (a 2 GB document's spool is
    never in memory: one batch at a time)."""
    batches: Iterator[list[ChunkRecord]] = iter_spool(path, batch_size=STORE_BATCH)
    try:
        while True:
            batch = await asyncio.to_thread(next, batches, None)
            if batch is None:
                return
            yield batch
    finally:
        batches.close()  # type: ignore[attr-defined]


def _remover(path: str) -> Any:
    def remove() -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    return remove


def _both(first: Cleanup | None, second: Cleanup) -> Cleanup:
    if first is None:
        return second

    def both() -> None:
        try:
            first()
        finally:
            second()

    return both


def spool_dir_for(context: ProcessorContext) -> str:
    """Where this machine's workers put chunk spools (created if needed)."""
    directory = Path(context.ledger.settings.home) / "spool"
    directory.mkdir(parents=True, exist_ok=True)
    return str(directory)


def make_ingest_processor(context: ProcessorContext, options: JSON) -> Processor:
    """The ``ingest`` processor for a batch with these options (see the module docstring)."""
    settings = context.ledger.settings
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
    # Spools older than any attempt can last were left by killed workers or children.
    stale_after = max(3600.0, context.task_timeout + 2 * settings.lease_seconds)
    remove_stale_partials(spool_dir, stale_after, complete=True)
    ledger = context.ledger
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
        return dataclasses.replace(output, cleanup=_both(output.cleanup, _remover(copy)))

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
            path, before = await asyncio.to_thread(_locate, doc.source, config.roots)
        else:
            path, before = copy, await asyncio.to_thread(_stat, copy)
        if before is not None:
            what = await asyncio.to_thread(_excluded_content, path)
            if what is not None:
                return Skip(excluded_reason(what))
        sha256 = doc.sha256.lower() if doc.sha256 else None
        hash_seconds = 0.0
        # A batch with sinks processes every source (as reprocess does), so each source's
        # version is one of its own documents, which its sinks then mirror.
        if not config.reprocess and not config.sinks and before is not None:
            holder = await ledger.index.indexed_source(
                doc.batch_id, doc.source, exclude_id=doc.id, model=model
            )
            if (
                holder is not None
                and holder.sha256 is not None
                and holder.size == before.st_size
                and holder.mtime_ns == before.st_mtime_ns
                and sha256 in (None, holder.sha256)
            ):
                return Skip(
                    skip_reason("unchanged", holder.id),
                    {"duplicate_of": holder.id, "sha256": holder.sha256},
                )
            if sha256 is None:
                hashed = time.perf_counter()
                sha256 = await asyncio.to_thread(_hash, path)
                hash_seconds = time.perf_counter() - hashed
            twin = None
            if sha256 is not None:
                twin = await ledger.index.indexed_content(
                    doc.batch_id, sha256, exclude_id=doc.id, model=model
                )
            if twin is not None:
                same_source = twin.source == doc.source
                kind = "unchanged" if same_source else "duplicate"
                assert sha256 is not None
                return Skip(
                    skip_reason(kind, twin.id),
                    {"duplicate_of": twin.id, "sha256": sha256},
                    write=ledger.index.content_write(
                        doc,
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
        pool = context.pool
        outcome: IngestOutcome
        if pool is None:
            outcome = await asyncio.to_thread(job)
        elif before is not None and before.st_size <= INLINE_MAX_BYTES:
            try:
                outcome = await asyncio.to_thread(job, only_types=INLINE_TYPES)
            except NeedsIsolation:
                outcome = await pool.run(job, timeout=context.task_timeout)
        else:
            outcome = await pool.run(job, timeout=context.task_timeout)
        if spec is not None:
            return await _embedded(doc, outcome, before, started, extract_started, hash_seconds)
        remove = _remover(outcome.spool_path)
        try:
            return _done(doc, outcome, before, started, extract_started, hash_seconds, remove)
        except BaseException:
            remove()
            raise

    async def _container(
        doc: Document, kind: ContainerKind, started: float, copy: str | None
    ) -> Done:
        """An archive or an email (from its source, or from ``copy``: a local copy of its
        object): its members become child documents (container_step)."""
        if copy is None:
            path, before = await asyncio.to_thread(_locate, doc.source, config.roots)
        else:
            path, before = copy, await asyncio.to_thread(_stat, copy)
        expansion = await container_step.expand(context, doc, kind, path, config.ingest)
        try:
            expansion = await container_step.store_members(settings, doc, expansion)
            body = await container_step.index_body(context, expansion, config.ingest, spool_dir)
            if body is None:
                result = container_result(expansion)
                write = ledger.index.content_write(
                    doc,
                    sha256=expansion.sha256,
                    size=expansion.size,
                    mtime_ns=before.st_mtime_ns if before is not None else None,
                )
                done = Done(result, write=write)
            elif spec is not None:
                done = await _embedded(doc, body, before, started, started, 0.0)
            else:
                remove = _remover(body.spool_path)
                done = _done(doc, body, before, started, started, 0.0, remove)
            return with_children(done, expansion, settings)
        except BaseException:
            container_step.member_remover(expansion, settings)()
            raise

    async def _staged(doc: Document, path: str, sha256: str | None) -> IngestOutcome | None:
        """The kept outcome of an earlier attempt whose embedding failed, if the file
        still has the content it was made from."""
        if not await asyncio.to_thread(embedding.has_staged, stage_dir, doc.id):
            return None
        if sha256 is None:
            sha256 = await asyncio.to_thread(_hash, path)
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
        """Embed the outcome's chunks into the cache, then ``Done`` with a write that
        stores chunks and vectors. On failure the spool is staged for the next attempt."""
        assert spec is not None
        try:
            embedder = build_embedder(spec)
            stats = await embedding.embed_chunks(
                ledger, embedder, _spool_batches(outcome.spool_path)
            )
        except BaseException as exc:
            if isinstance(exc, Exception) and getattr(exc, "retryable", False):
                await asyncio.to_thread(embedding.stage, stage_dir, doc.id, outcome)
            else:
                _remover(outcome.spool_path)()
            raise
        spool_remove = _remover(outcome.spool_path)
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

        def stored(seconds: float) -> None:
            # The result is written after the chunks, in the same transaction.
            timings["store"] = round(seconds, 6)

        same_file = before is not None and before.st_size == outcome.size
        write = ledger.index.chunks_write(
            doc,
            sha256=outcome.sha256,
            size=outcome.size,
            mtime_ns=before.st_mtime_ns if same_file and before is not None else None,
            expected=outcome.chunks,
            chunks=functools.partial(_spool_batches, outcome.spool_path),
            on_stored=stored,
            model=model,
            sinks=config.sinks,
        )
        return Done(result, write=write, cleanup=remove)

    return ingest
