"""The embedding stage of the ingest processor: a document's chunk spool in, every chunk's
vector in the embedding cache out.

1. The spool is read 1,000 chunks at a time; each chunk's key is the SHA-256 of its text.
2. Keys whose (key, model) vector is in the cache are hits: never sent again. Repeats within
   the document, and texts another document of this process is embedding right now
   (single flight), are waited for rather than sent.
3. The rest go to the embedder in groups of its ``batch_size``, groups in parallel, at most
   as many in flight per model in this process as an adaptive limit allows: it starts at
   the embedder's ``concurrency``, halves when the endpoint answers 429 and grows by one
   after a run of successes (``ledger.backpressure.AdaptiveLimiter``; the gauge
   ``ledger_stage_concurrency{stage="embed"}``). Each group's vectors are committed to the
   cache as soon as they come back, so a failure, a kill or a lost lease loses at most the
   groups in flight.
4. A 429 fails the document with ``Throttled`` (rescheduled, not charged an attempt) only
   when no group failed for a real reason: a real failure is what the attempt reports.

The vectors are then attached to the chunks by the transaction that marks the document
done (``ledger.index.chunks_write(model=...)``), from the cache.

**Stage checkpoint.** When embedding fails after extraction succeeded, the spool is kept in
``LEDGER_HOME/stage`` as ``<document id>-<sha256>.spool`` (with its outcome in a ``.json``
beside it); the document's next attempt uses it instead of parsing the file again, if the
file still has that SHA-256. Staged spools are deleted when their document is done, and
swept after ``STAGE_MAX_AGE`` seconds (a batch paused longer than that parses again; no
vector is lost, they are in the cache).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import time
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from ledger import metrics
from ledger.app import Ledger
from ledger.backpressure import AdaptiveLimiter, Throttled, is_throttle
from ledger.embedders import Embedder
from ledger.errors import RetryableError
from ledger.index.vectors import text_sha256, to_bytes
from ledger.processors.ingest.chunking import ChunkRecord
from ledger.processors.ingest.pipeline import IngestOutcome, StageTimings

STAGE_MAX_AGE = 86_400.0

# Groups of texts between "sent to the embedder" and "committed to the cache", per model in
# this process: at most the adaptive limit, itself at most the embedder's ``concurrency``.
# This bounds what a kill can cost (answers received but not yet cached are asked for
# again) to ``concurrency * batch_size`` texts, even when cache commits queue behind other
# writes.
_WINDOWS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AdaptiveLimiter]] = (
    weakref.WeakKeyDictionary()
)

# Texts being embedded in this process: (model, key) -> future resolved once cached.
_INFLIGHT: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str], asyncio.Future[None]]
] = weakref.WeakKeyDictionary()


@dataclasses.dataclass
class EmbedStats:
    """What embedding one document took: ``embedded`` texts sent to the embedder,
    ``cache_hits`` chunks that needed no call (in the cache, repeated in the document, or
    embedded meanwhile by another document), and seconds."""

    chunks: int = 0
    embedded: int = 0
    seconds: float = 0.0

    @property
    def cache_hits(self) -> int:
        return self.chunks - self.embedded


async def embed_chunks(
    ledger: Ledger,
    embedder: Embedder,
    batches: AsyncIterator[Sequence[ChunkRecord]],
) -> EmbedStats:
    """Make sure every chunk of ``batches`` has its vector in the cache (see module doc).
    Raises the embedder's error after every group that succeeded is cached."""
    started = time.perf_counter()
    stats = EmbedStats()
    model = embedder.model
    inflight = _INFLIGHT.setdefault(asyncio.get_running_loop(), {})
    windows = _WINDOWS.setdefault(asyncio.get_running_loop(), {})
    window = windows.get(model)
    if window is None:
        window = windows[model] = AdaptiveLimiter(
            embedder.spec.concurrency, on_change=_gauge_setter(model)
        )
    async for batch in batches:
        stats.chunks += len(batch)
        texts: dict[str, str] = {}
        for chunk in batch:
            texts.setdefault(text_sha256(chunk.text), chunk.text)
        present = await ledger.index.cached_keys(model, list(texts))
        mine: dict[str, asyncio.Future[None]] = {}
        theirs: list[asyncio.Future[None]] = []
        loop = asyncio.get_running_loop()
        for key in texts:
            if key in present:
                continue
            running = inflight.get((model, key))
            if running is not None:
                theirs.append(running)
            else:
                mine[key] = inflight[(model, key)] = loop.create_future()
        failed: dict[str, BaseException] = {}  # text key -> its group's error, for waiters
        try:
            keys = list(mine)
            size = embedder.spec.batch_size
            groups = [keys[i : i + size] for i in range(0, len(keys), size)]
            results = await asyncio.gather(
                *(_embed_group(ledger, embedder, g, texts, mine, window) for g in groups),
                return_exceptions=True,
            )
            stats.embedded += sum(r for r in results if isinstance(r, int))
            for group, result in zip(groups, results, strict=True):
                if isinstance(result, BaseException):
                    failed.update(dict.fromkeys(group, result))
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                # A real failure outranks a throttle: it is what this attempt is charged for.
                raise min(errors, key=is_throttle)
        finally:
            for key, future in mine.items():
                inflight.pop((model, key), None)
                if not future.done():
                    future.set_exception(_interrupted(failed.get(key)))
                    future.exception()  # retrieved: no "never retrieved" warning
        for running in theirs:
            await asyncio.shield(running)
    stats.seconds = time.perf_counter() - started
    return stats


def _gauge_setter(model: str) -> Callable[[int], None]:
    def set_limit(limit: int) -> None:
        metrics.observe_stage_limit("embed", model, limit)

    return set_limit


def _interrupted(cause: BaseException | None) -> RetryableError:
    """What documents waiting for texts another document was embedding get when that one
    stopped: a throttle when it was throttled (the same wait applies to them), else a
    retry that is not their fault."""
    if cause is not None and is_throttle(cause):
        return Throttled(
            getattr(cause, "code", "throttled"),
            f"another document embedding the same text was throttled: {cause}",
            retry_after=getattr(cause, "retry_after", None),
        )
    return RetryableError(
        "embed_interrupted",
        "another document embedding the same text failed or stopped",
        systemic=False,
    )


async def _embed_group(
    ledger: Ledger,
    embedder: Embedder,
    keys: list[str],
    texts: dict[str, str],
    futures: dict[str, asyncio.Future[None]],
    window: AdaptiveLimiter,
) -> int:
    async with window.slot():
        matrix = await embedder.embed([texts[k] for k in keys])
        await ledger.index.cache_vectors(
            embedder.model,
            [(key, to_bytes(row)) for key, row in zip(keys, matrix, strict=True)],
        )
    for key in keys:
        if not futures[key].done():
            futures[key].set_result(None)
    return len(keys)


# ------------------------------------------------------------------ stage checkpoint


def stage_dir_for(home: Path) -> str:
    directory = home / "stage"
    directory.mkdir(parents=True, exist_ok=True)
    return str(directory)


def _stage_name(stage_dir: str, document_id: int, sha256: str) -> str:
    return os.path.join(stage_dir, f"{document_id}-{sha256}")


def staged(stage_dir: str, document_id: int, sha256: str) -> IngestOutcome | None:
    """The outcome of an earlier attempt whose chunks were kept, if there is one for this
    document and content."""
    base = _stage_name(stage_dir, document_id, sha256)
    try:
        with open(base + ".json", encoding="utf-8") as file:
            facts: dict[str, Any] = json.load(file)
    except (OSError, ValueError):
        return None
    if not os.path.exists(base + ".spool"):
        return None
    return IngestOutcome(
        **facts,
        timings=StageTimings(read=0.0, extract=0.0, chunk=0.0, spool=0.0),
        spool_path=base + ".spool",
    )


def has_staged(stage_dir: str, document_id: int) -> bool:
    prefix = f"{document_id}-"
    with os.scandir(stage_dir) as entries:
        return any(e.name.startswith(prefix) and e.name.endswith(".spool") for e in entries)


def stage(stage_dir: str, document_id: int, outcome: IngestOutcome) -> str:
    """Keep the spool of ``outcome`` for the document's next attempt; returns its path."""
    base = _stage_name(stage_dir, document_id, outcome.sha256)
    if outcome.spool_path == base + ".spool":
        return outcome.spool_path
    facts = {
        f.name: getattr(outcome, f.name)
        for f in dataclasses.fields(outcome)
        if f.name not in ("timings", "spool_path")
    }
    partial = base + ".json.partial"
    with open(partial, "w", encoding="utf-8") as file:
        json.dump(facts, file)
    os.replace(partial, base + ".json")
    os.replace(outcome.spool_path, base + ".spool")  # the spool is what says "staged"
    return base + ".spool"


def unstager(stage_dir: str, document_id: int) -> Callable[[], None]:
    """Removes every staged spool of the document (once it is done)."""

    def remove() -> None:
        prefix = f"{document_id}-"
        with os.scandir(stage_dir) as entries:
            for entry in entries:
                if entry.name.startswith(prefix):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)

    return remove


def sweep_stage(stage_dir: str, older_than: float = STAGE_MAX_AGE) -> int:
    """Delete staged files not touched for ``older_than`` seconds."""
    cutoff = time.time() - older_than
    removed = 0
    with os.scandir(stage_dir) as entries:
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
    return removed


__all__ = [
    "EmbedStats",
    "embed_chunks",
    "has_staged",
    "stage",
    "stage_dir_for",
    "staged",
    "sweep_stage",
    "unstager",
]
