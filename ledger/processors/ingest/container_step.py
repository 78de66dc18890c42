"""The ingest processor's step for archives and emails: expand, index the body, hand over.

1. **Expand** in the worker's process pool (time and memory limits; a thread without a pool):
   :func:`ledger.processors.ingest.expand.expand_container` writes the members to their
   files in the attempt's own folder of the storage folder, before any transaction (first
   removing the parent's folders no row names and no lease holds:
   :mod:`ledger.storage.member_attempts`).
   With ``LEDGER_STORAGE_URL`` set, :func:`store_members` then puts them into the object
   store (:mod:`ledger.storage.member_objects`) and removes the local files, so a worker on
   any machine can read a child; its source is the object, its ETag and time recorded as a
   submit records them.
2. **Body**: an email's body file goes through ``process_file`` like any text or HTML
   document; its chunks are the parent's own. An archive has no text of its own.
3. **Hand over**: ``Done`` carries the members as data (``children``); the transaction
   that marks the parent done makes them child documents. ``discard`` removes the member
   files (or objects) when that transaction does not commit, ``replaced`` the members of
   the children it replaced when it does; the body file and its spool are removed either
   way.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from ledger.errors import PermanentError
from ledger.model import JSON, ChildFile
from ledger.processors.base import Document, Done, ProcessorContext
from ledger.processors.ingest.containers import (
    ContainerKind,
    Expansion,
    ParentRef,
    remove_files,
)
from ledger.processors.ingest.expand import expand_container
from ledger.processors.ingest.options import IngestErrorCode, IngestOptions
from ledger.processors.ingest.pipeline import IngestOutcome, process_file
from ledger.storage import member_attempts, member_objects, objects
from ledger.storage.urls import ObjectUrl, is_object_url

if TYPE_CHECKING:
    from ledger.settings import Settings


def depth_of(doc: Document) -> int:
    """How deep a document sits in containers: 0 at the top, 1 for an archive's member."""
    meta = doc.meta if isinstance(doc.meta, dict) else {}
    depth = meta.get("depth", 0)
    return depth if isinstance(depth, int) and depth >= 0 else 0


async def expand(
    context: ProcessorContext,
    doc: Document,
    kind: ContainerKind,
    path: str,
    options: IngestOptions,
) -> Expansion:
    """The container's members, extracted (see the module docstring, step 1)."""
    depth = depth_of(doc)
    if depth >= options.max_archive_depth:
        raise PermanentError(
            IngestErrorCode.ARCHIVE_TOO_LARGE,
            f"a container nested {depth + 1} deep, more than {options.max_archive_depth}",
        )
    settings = context.settings
    replaced = await sweep_attempts(context, doc)
    out_dir = member_attempts.attempt_dir(settings.storage, doc.id, doc.lease_token)
    parent = ParentRef(id=doc.id, source=doc.source, meta=doc.meta, depth=depth)
    job = functools.partial(expand_container, path, kind.value, out_dir, parent, options)
    pool = context.pool
    if pool is None:
        expansion = await asyncio.to_thread(job)
    else:
        expansion = await pool.run(job, timeout=context.task_timeout)
    expansion.replaced = sorted(replaced)
    return expansion


async def sweep_attempts(context: ProcessorContext, doc: Document) -> set[str]:
    """Remove the parent's member folders that no child names and no lease holds (what
    killed or outrun attempts left); the folders its current children name. Listed before
    the database is read, so a folder made meanwhile is never taken for a leftover."""
    settings = context.settings
    if context.members is None:  # nobody to ask who holds what: leave every folder
        return set()
    names = await asyncio.to_thread(member_attempts.listed, settings, doc.id)
    if not names:
        return set()
    token, sources = await context.members.member_holders(doc.id)
    named = {member_attempts.entry_of(settings, doc.id, source) for source in sources}
    keep = {name for name in (*named, token, doc.lease_token) if name}
    await asyncio.to_thread(member_attempts.remove, settings, doc.id, names - keep)
    return {name for name in named if name and name != doc.lease_token}


async def index_body(
    context: ProcessorContext, expansion: Expansion, options: IngestOptions, spool_dir: str
) -> IngestOutcome | None:
    """An email body's chunks in a spool, as the parent's own (named by the email's hash
    and size); None when there is no body or it holds no text."""
    body = expansion.body_path
    if body is None:
        return None
    job = functools.partial(
        process_file,
        body,
        expected_size=None,
        expected_mtime_ns=None,
        expected_sha256=None,
        options=options,
        spool_dir=spool_dir,
    )
    try:
        pool = context.pool
        if pool is None:
            outcome = await asyncio.to_thread(job)
        else:
            outcome = await pool.run(job, timeout=context.task_timeout)
    except PermanentError as exc:
        if exc.code in (IngestErrorCode.EMPTY_FILE, IngestErrorCode.NO_TEXT):
            return None
        raise
    finally:
        await asyncio.to_thread(remove_files, [body], os.path.dirname(body))
    return dataclasses.replace(outcome, sha256=expansion.sha256, size=expansion.size)


def container_result(expansion: Expansion) -> JSON:
    """The parent's result when it has no text of its own (an archive, a bodiless email)."""
    return {
        "type": expansion.kind,
        "characters": 0,
        "chunks": 0,
        "size": expansion.size,
        "sha256": expansion.sha256,
        **expansion.summary(),
    }


async def store_members(settings: Settings, doc: Document, expansion: Expansion) -> Expansion:
    """The expansion with its members in the object store when ``LEDGER_STORAGE_URL`` is
    set (unchanged otherwise). With the store set, their local files are removed once this
    returns or raises, so nothing of them stays on this machine."""
    storage_url = settings.storage_url
    if storage_url is None or not expansion.members:
        return expansion
    paths = [m.source for m in expansion.members]
    try:
        stored = await asyncio.to_thread(
            member_objects.upload_members,
            objects.client_for(settings),
            storage_url,
            doc.id,
            doc.lease_token,
            paths,
        )
    finally:
        await asyncio.to_thread(remove_files, paths, os.path.dirname(paths[0]))
    members = [
        msgspec.structs.replace(
            member,
            source=str(info.url),
            mtime_ns=info.last_modified_ns,
            meta={**_meta(member), "etag": info.etag},
        )
        for member, info in zip(expansion.members, stored, strict=True)
    ]
    return dataclasses.replace(expansion, members=members)


def _meta(member: ChildFile) -> JSON:
    return member.meta if isinstance(member.meta, dict) else {}


def with_children(done: Done, expansion: Expansion, settings: Settings, parent_id: int) -> Done:
    """``done`` carrying the expansion's members as children (and the result saying so),
    with a discard that removes their files should the parent's finish not commit, and a
    cleanup of the members of the children it replaces should it commit."""
    result = {**done.result, "type": expansion.kind, **expansion.summary()}
    replaced = expansion.replaced

    def remove_replaced() -> None:
        if not replaced:
            return
        if settings.storage_url is None:
            member_attempts.remove(settings, parent_id, replaced)
            return
        # In a thread of its own: a slow store must not hold up lease renewals (what a
        # deletion lost with the process leaves, the parent's next attempt removes).
        threading.Thread(
            target=member_attempts.remove, args=(settings, parent_id, replaced), daemon=True
        ).start()

    return dataclasses.replace(
        done,
        result=result,
        children=tuple(expansion.members),
        discard=member_remover(expansion, settings),
        replaced=remove_replaced,
    )


def member_remover(expansion: Expansion, settings: Settings) -> Callable[[], None]:
    """What removes the expansion's member files or objects (and their folder, once
    empty). The worker calls discards on its event loop, after the transaction: objects are
    deleted in a thread of their own, so a slow store cannot hold up lease renewals (a
    deletion lost with the process leaves keys the next attempt overwrites)."""
    sources = [m.source for m in expansion.members]
    stored = [ObjectUrl.parse(s) for s in sources if is_object_url(s)]
    files = [s for s in sources if not is_object_url(s)]
    if expansion.body_path is not None:  # an email's body not yet indexed (and removed)
        files.append(expansion.body_path)
    folder = os.path.dirname(files[0]) if files else ""

    def discard() -> None:
        if files:
            remove_files(files, folder)
            with contextlib.suppress(OSError):  # the parent's folder, when this emptied it
                os.rmdir(os.path.dirname(folder))
        if stored:
            client = objects.client_for(settings)
            threading.Thread(
                target=member_objects.delete_objects, args=(client, stored), daemon=True
            ).start()

    return discard
