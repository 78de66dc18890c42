"""The finish transaction of an ingest document does no file I/O.

The transaction that marks a document done holds SQLite's write lock: every other worker's
claim and finish waits for it. So it must read, parse and hash nothing: the processor's
outcome is data (a spool handle), and the worker reads a small spool into the outcome or
stages a big one's chunks before the finish.

An audit hook (``sys.addaudithook``) sees every ``open`` and ``os.*`` file call of this
process, in any thread, while a real finish of a real ingest document runs on a SQLite file.
Before outcomes were data, the finish streamed the spool from disk inside the transaction
(``Done.write``): this test, run on that code, saw the spool's ``open`` and failed (checked
for both sizes below when it was written).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from ledger.app import Ledger
from ledger.model import BatchSpec, Outcome
from ledger.processors.base import Done, ProcessorContext
from ledger.processors.registry import ProcessorRegistry
from ledger.states import DocumentStatus
from ledger.worker import outcome_prep
from ledger.worker.runtime import Worker
from tests.conftest import sql
from tests.pipeline.support import pipeline_settings, source_specs, sync_url_of


class _FileEvents:
    """Records file events while active. An audit hook cannot be removed, so one hook is
    installed for the session and switched on only around the finish."""

    def __init__(self) -> None:
        self.active = False
        self.seen: list[tuple[str, Any]] = []

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if self.active and (event == "open" or event.startswith(("os.", "shutil."))):
            self.seen.append((event, args[:1]))


_EVENTS = _FileEvents()
sys.addaudithook(_EVENTS)


def _text(size: int) -> str:
    line = "The ledger keeps every document's state in a row of its own database table.\n"
    return line * (size // len(line) + 1)


def _trace_threads(ledger: Ledger, seen: list[tuple[int, str]]) -> None:
    """From now on, every statement of the ledger's SQLite connections and its thread."""

    def trace(dbapi_connection: Any, _record: Any) -> None:
        raw = dbapi_connection._connection._conn
        raw.set_trace_callback(lambda sql: seen.append((threading.get_ident(), sql)))

    event.listen(ledger.runner.engine.sync_engine, "connect", trace)


@pytest.mark.parametrize(
    ("size", "allowance", "staged", "brief"),
    [
        (2_000, None, False, True),  # a spool under the inline limit
        (400_000, None, True, False),  # over it
        (400_000, 1 << 20, False, False),  # over it, in memory under a worker's allowance
        (400_000, 100_000, True, False),  # over it and over what the allowance has room for
    ],
)
async def test_the_finish_transaction_opens_no_file(
    sqlite_url: str,
    tmp_path: Path,
    size: int,
    allowance: int | None,
    staged: bool,
    brief: bool,
) -> None:
    source = tmp_path / "doc.txt"
    source.write_text(_text(size), encoding="utf-8")
    ledger = await Ledger.open(pipeline_settings(sqlite_url, tmp_path / "home"))
    statements: list[tuple[int, str]] = []
    _trace_threads(ledger, statements)
    await ledger.runner.engine.dispose()  # connections opened from now on are traced
    try:
        await ledger.queue.submit(BatchSpec(id="io", processor="ingest"), source_specs([source]))
        worker = await ledger.workers.register(concurrency=1)
        [doc] = await ledger.queue.claim(worker, 1)
        registry = ProcessorRegistry.from_settings(ledger.settings)
        context = ProcessorContext(
            settings=ledger.settings, pool=None, task_timeout=60.0, vectors=ledger.index
        )
        statements.clear()
        [doc] = await outcome_prep.with_facts(ledger, registry, context, [doc])
        assert doc.facts is not None  # the ingest processor asks for its dedup facts
        # One read per claimed group, on the event loop's thread (a brief transaction).
        reads = [t for t, text in statements if text != "COMMIT"]
        assert reads and set(reads) == {threading.get_ident()}
        output = await registry.get(context, doc.processor, doc.options)(doc)
        assert isinstance(output, Done) and output.index is not None
        assert output.index.spool is not None
        made = Outcome.done(doc, output.result, output.index, output.cleanup)
        inline = outcome_prep.InlineAllowance(allowance) if allowance is not None else None
        outcome = await outcome_prep.prepare(ledger, doc, made, inline)
        assert (outcome.rows is None) is staged
        if inline is not None:  # held while the outcome waits, given back when it leaves
            assert (inline.held > 0) is not staged
            inline.give_back(doc.id, doc.lease_token)
            assert inline.held == 0
        _EVENTS.seen.clear()
        statements.clear()
        _EVENTS.active = True
        try:
            result = await ledger.queue.complete(worker, [outcome])
        finally:
            _EVENTS.active = False
        assert result.statuses == {doc.id: DocumentStatus.DONE}
        assert _EVENTS.seen == []
        # A small finish runs its statements on the event loop's thread (a brief
        # transaction); a big one leaves the loop free while SQLite indexes its chunks.
        chunk_inserts = [t for t, text in statements if text.startswith("INSERT INTO chunks")]
        assert chunk_inserts
        on_loop = {t == threading.get_ident() for t in chunk_inserts}
        assert on_loop == {brief}
        assert made.cleanup is not None
        made.cleanup()
        url = sync_url_of(sqlite_url)
        stored = sql(url, "SELECT count(*) FROM chunks WHERE document_id = :d", d=doc.id)
        assert stored[0][0] == output.index.spool.count > (1 if staged else 0)
        assert sql(url, "SELECT count(*) FROM staged_chunks") == [(0,)]
        assert [h.document_id for h in await ledger.index.search("ledger", 1)] == [doc.id]
    finally:
        await ledger.close()


def test_the_hook_sees_a_file_being_read(tmp_path: Path) -> None:
    # The test above must be able to fail: reading a file while active is seen.
    path = tmp_path / "spool"
    path.write_bytes(b"x")
    _EVENTS.seen.clear()
    _EVENTS.active = True
    try:
        path.read_bytes()
    finally:
        _EVENTS.active = False
    assert any(event == "open" and str(args[0]) == str(path) for event, args in _EVENTS.seen)


@pytest.mark.parametrize("allowance", [None, 300_000])  # the default; room for about one
async def test_a_worker_reads_mid_sized_spools_under_its_allowance_and_gives_it_back(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, allowance: int | None
) -> None:
    if allowance is not None:
        monkeypatch.setattr(outcome_prep, "INLINE_ALLOWANCE_BYTES", allowance)
    paths = []
    for number in range(4):  # each spool between the small-spool limit and the largest inline
        path = tmp_path / f"doc{number}.txt"
        path.write_text(f"document {number} " + _text(200_000), encoding="utf-8")
        paths.append(path)
    ledger = await Ledger.open(pipeline_settings(sqlite_url, tmp_path / "home"))
    try:
        await ledger.queue.submit(BatchSpec(id="mid", processor="ingest"), source_specs(paths))
        worker = Worker(ledger, batch_ids=["mid"])
        stats = await worker.run(until_complete=True)
        assert stats.done == 4
        assert worker._inline.held == 0  # every outcome gave its share back once recorded
        url = sync_url_of(sqlite_url)
        per_document = sql(
            url, "SELECT count(*), max(ordinal) + 1 FROM chunks GROUP BY document_id"
        )
        assert len(per_document) == 4 and all(n == top > 1 for n, top in per_document)
        assert sql(url, "SELECT count(*) FROM staged_chunks") == [(0,)]
        for number in range(4):
            assert len(await ledger.index.search(f"document {number}", 1)) == 1
    finally:
        await ledger.close()
