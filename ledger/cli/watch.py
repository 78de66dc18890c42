"""``ledger ingest DIR --watch``: keep a folder and its batch in step while files change.

The run first makes a full ``--sync`` pass (that is also the catch-up after a restart: the
ledger's rows, not this process, remember what was indexed), then watches the folders with
watchfiles. Events are collected per path and a path is taken once it has been quiet for
the debounce (``LEDGER_WATCH_DEBOUNCE_SECONDS`` or ``--debounce``) *and* its size and
modification time did not move over it, so a file still being written waits. Everything
that settled in one tick is one change set: new and changed files are submitted in one
transaction (the in-process worker, running all along, processes them), files gone are
retired (``ledger.queue.retire``), and one line tells what happened.

Temporary names never reach the ledger: dotfiles (unless ``--hidden``), ``~`` backups and
``.part``, ``.tmp``, ``.crdownload``, ``.swp`` downloads and editor files. Memory holds the
paths with a change not yet settled, never the tree.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ledger.cli.selection import Selection
from ledger.wording import plural

if TYPE_CHECKING:
    from ledger.cli.ingest_session import Session
    from ledger.cli.ingest_views import View
    from ledger.model import SourceSpec
    from ledger.queue.retire import RetireReport

TEMPORARY_SUFFIXES = ("~", ".part", ".tmp", ".crdownload", ".swp", ".swx")
TICK_SECONDS = 0.25  # how often settled paths are looked for when no event comes


def temporary(path: str, *, hidden: bool) -> bool:
    """A name that is being written or is an editor's scratch file: never ingested."""
    name = os.path.basename(path.rstrip(os.sep))
    if not hidden and name.startswith("."):
        return True
    return name.endswith(TEMPORARY_SUFFIXES)


def ignored(path: str, selection: Selection) -> bool:
    """Events the watcher drops at once: temporary names, and (without ``--hidden``)
    anything inside a hidden folder such as ``.git``, where churn is constant."""
    if temporary(path, hidden=selection.hidden):
        return True
    found = selection.root_of(path)
    if found is None or selection.hidden:
        return False
    return any(part.startswith(".") for part in found[1].split("/"))


def _signature(path: str) -> tuple[int, int] | None:
    """(size, mtime) of what ``path`` names now; None when nothing is there. Folders count
    as (0, 0): only their appearing matters."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (0, 0) if os.path.isdir(path) else (st.st_size, st.st_mtime_ns)


@dataclass
class Settling:
    """Paths with a change not yet taken: when their last event came, what they looked like
    then, and whether a folder appeared there (then its files are looked for)."""

    debounce: float
    clock: Callable[[], float] = time.monotonic
    _paths: dict[str, tuple[float, tuple[int, int] | None, bool]] = field(default_factory=dict)

    def note(self, path: str, *, appeared: bool) -> None:
        _, _, before = self._paths.get(path, (0.0, None, False))
        self._paths[path] = (self.clock(), _signature(path), before or appeared)

    def __len__(self) -> int:
        return len(self._paths)

    def settled(self) -> list[tuple[str, bool]]:
        """The paths quiet for the debounce and unchanged over it, taken out: (path, a
        folder appeared there). A path that still moves starts its wait again."""
        now = self.clock()
        ready = []
        for path, (last, seen, appeared) in list(self._paths.items()):
            if now - last < self.debounce:
                continue
            current = _signature(path)
            if current == seen:
                ready.append((path, appeared))
                del self._paths[path]
            else:
                self._paths[path] = (now, current, appeared)
        return ready


@dataclass
class ChangeSet:
    """What one tick's settled paths mean: sources to submit, folders that appeared (their
    files are submitted too) and paths that are gone (or no longer selected)."""

    sources: list[SourceSpec] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, settled: Iterable[tuple[str, bool]], selection: Selection) -> ChangeSet:
        change = cls()
        for path, appeared in settled:
            if os.path.isdir(path) and not os.path.islink(path):
                if appeared:  # a folder's own "modified" events add nothing
                    change.folders.append(path)
                continue
            spec = selection.spec(path)
            if spec is not None:
                change.sources.append(spec)
            else:
                change.gone.append(path)
        return change

    def all_sources(self, selection: Selection) -> Iterable[SourceSpec]:
        """The files, then those found in the folders that appeared (less the files,
        which had events of their own)."""
        yield from self.sources
        named = {s.source for s in self.sources}
        for folder in self.folders:
            yield from (s for s in selection.below(folder) if s.source not in named)


@dataclass
class Watcher:
    """The watch loop of one ``ledger ingest --watch`` run (see the module)."""

    session: Session
    view: View
    batch_id: str
    selection: Selection
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    # Paths whose document was running when their change was applied: submit leaves a
    # running document alone and a retire skips it, so they are applied again once done.
    deferred: set[str] = field(default_factory=set)
    _deferred_check: float = 0.0
    change_sets: int = 0

    async def run(self) -> None:
        """Watch until :attr:`stop` is set (Ctrl-C); the worker runs all along."""
        from watchfiles import Change, awatch

        from ledger.cli.runtime import make_worker

        session, req = self.session, self.session.request
        worker = session.worker = make_worker(
            session.ledger,
            concurrency=req.concurrency,
            batch_ids=[self.batch_id],
            processors=[req.processor],
        )
        work = asyncio.create_task(worker.run())
        settling = Settling(req.debounce)
        roots = [str(root) for root in req.roots]
        counts: tuple[int, ...] | None = None
        self.view.note(f"Watching {', '.join(roots)} (Ctrl-C to stop).")
        try:
            async for changes in awatch(
                *roots,
                watch_filter=lambda _change, path: not ignored(path, self.selection),
                stop_event=self.stop,
                debounce=int(max(req.debounce, TICK_SECONDS) * 1000),
                step=50,
                rust_timeout=int(TICK_SECONDS * 1000),
                yield_on_timeout=True,
                recursive=True,
            ):
                for change, path in changes:
                    settling.note(path, appeared=change == Change.added)
                settled = settling.settled()
                if settled:
                    await self.apply(ChangeSet.of(settled, self.selection))
                if self.deferred:
                    await self.apply_deferred(req.debounce)
                if work.done():
                    break  # the worker ended (an error): its result is raised below
                counts = await session.show_progress(self.view, self.batch_id, counts)
        finally:
            if not work.done():
                worker.stop(graceful=True)
            await asyncio.wait({work})
        work.result()

    async def apply(self, change: ChangeSet) -> None:
        """Submit what was added or changed, retire what is gone; one line if anything did."""
        from ledger.cli.ingest_request import profiles_of
        from ledger.processors.builtin import unchanged_skip

        ledger, req = self.session.ledger, self.session.request
        added = changed = 0
        if change.sources or change.folders:
            spec = req.spec()
            sources = change.all_sources(self.selection)
            result = await ledger.queue.submit(
                spec,
                change.sources if not change.folders else sources,
                skip_unchanged=unchanged_skip(spec, profiles_of(ledger)),
            )
            added, changed = result.added, result.requeued
            await self.defer_running([s.source for s in change.sources])
        removed = 0
        if change.gone:
            removed = (await self.retire(change.gone)).documents
        self.report(added, changed, removed)

    def report(self, added: int, changed: int, removed: int) -> None:
        """One line per change set that changed the batch."""
        self.session.removed += removed
        if added or changed or removed:
            self.change_sets += 1
            self.view.note(
                f"changes: {plural(added, 'file')} added, {changed:,} changed, {removed:,} removed"
            )

    async def retire(self, paths: list[str]) -> RetireReport:
        """Retire the documents at or below ``paths`` whose file is gone; running ones are
        deferred until their worker is done."""
        report = await self.session.ledger.control.retire_gone(
            self.batch_id, self.selection.still_there, paths=paths
        )
        self.deferred.update(report.running or [])
        return report

    async def defer_running(self, sources: list[str]) -> None:
        """Defer the sources just submitted whose document is running (their change was
        not taken: the worker is processing the file as it was)."""
        self.deferred.update(
            await self.session.ledger.control.running_among(self.batch_id, sources)
        )

    async def apply_deferred(self, every: float) -> None:
        """Apply the deferred paths again whose document is no longer running (at most
        once per ``every`` seconds: it reads the ledger)."""
        now = time.monotonic()
        if now - self._deferred_check < every:
            return
        self._deferred_check = now
        paths = sorted(self.deferred)
        still = set(await self.session.ledger.control.running_among(self.batch_id, paths))
        ready = [(path, False) for path in paths if path not in still]
        self.deferred = still
        if ready:
            await self.apply(ChangeSet.of(ready, self.selection))
