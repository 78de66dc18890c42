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
from pathlib import Path
from typing import Any

import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec, Outcome
from ledger.processors.base import Done, ProcessorContext
from ledger.processors.registry import ProcessorRegistry
from ledger.states import DocumentStatus
from ledger.worker import outcome_prep
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


@pytest.mark.parametrize(
    ("size", "staged"),
    [(2_000, False), (400_000, True)],  # a spool under and over the inline limit
)
async def test_the_finish_transaction_opens_no_file(
    sqlite_url: str, tmp_path: Path, size: int, staged: bool
) -> None:
    source = tmp_path / "doc.txt"
    source.write_text(_text(size), encoding="utf-8")
    ledger = await Ledger.open(pipeline_settings(sqlite_url, tmp_path / "home"))
    try:
        await ledger.queue.submit(BatchSpec(id="io", processor="ingest"), source_specs([source]))
        worker = await ledger.workers.register(concurrency=1)
        [doc] = await ledger.queue.claim(worker, 1)
        registry = ProcessorRegistry.from_settings(ledger.settings)
        context = ProcessorContext(
            settings=ledger.settings, pool=None, task_timeout=60.0, vectors=ledger.index
        )
        [doc] = await outcome_prep.with_facts(ledger, registry, context, [doc])
        assert doc.facts is not None  # the ingest processor asks for its dedup facts
        output = await registry.get(context, doc.processor, doc.options)(doc)
        assert isinstance(output, Done) and output.index is not None
        assert output.index.spool is not None
        made = Outcome.done(doc, output.result, output.index, output.cleanup)
        outcome = await outcome_prep.prepare(ledger, doc, made)
        assert (outcome.rows is None) is staged
        _EVENTS.seen.clear()
        _EVENTS.active = True
        try:
            result = await ledger.queue.complete(worker, [outcome])
        finally:
            _EVENTS.active = False
        assert result.statuses == {doc.id: DocumentStatus.DONE}
        assert _EVENTS.seen == []
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
