"""Small files' steps run on the event loop while files answer fast, in threads when not.

A trip to a thread per file step cost a tiny text file about 47 context switches (the
thread giving up and taking back the GIL at each system call while the loop was busy);
the steps now run on the loop, and a slow step sends the next ones to threads for a while
so that a slow filesystem cannot hold the worker's loop (``ledger.loop_io``).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ledger.app import Ledger
from ledger.loop_io import FileSteps
from ledger.model import BatchSpec
from ledger.processors.ingest import processor as ingest_processor
from ledger.worker import outcome_prep
from ledger.worker.runtime import Worker
from tests.pipeline.support import pipeline_settings, source_specs


class _Opens:
    """The thread of every ``open`` of a file under ``folder`` while active (an audit hook
    cannot be removed: one is installed for the session and switched on in the test)."""

    def __init__(self) -> None:
        self.folder: str | None = None
        self.seen: list[tuple[str, int]] = []

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if self.folder is None or event != "open" or not isinstance(args[0], str | Path):
            return
        path = str(args[0])
        if path.startswith(self.folder):
            self.seen.append((Path(path).name, threading.get_ident()))


_OPENS = _Opens()
sys.addaudithook(_OPENS)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _where() -> int:
    return threading.get_ident()


def _slow() -> int:
    time.sleep(0.05)  # longer than the slow_step below, however fast the machine
    return threading.get_ident()


def _fails() -> None:
    raise OSError("unreadable")


async def test_steps_run_on_the_loop_until_one_stalls_then_in_threads_for_a_while() -> None:
    clock = _Clock()
    steps = FileSteps(slow_step=1.0, stall=0.01, hold=30.0, clock=clock)
    loop_thread = threading.get_ident()
    assert await steps.run(_where) == loop_thread
    assert not steps.in_threads
    assert await steps.run(_slow) == loop_thread  # found slow only once it has run
    assert steps.in_threads
    assert await steps.run(_where) != loop_thread
    clock.now += 29.0
    assert await steps.run(_where) != loop_thread
    clock.now += 2.0  # the hold is over: the loop is tried again
    assert not steps.in_threads
    assert await steps.run(_where) == loop_thread


async def test_steps_go_to_threads_when_they_are_slow_on_average() -> None:
    # No single step stalls, but each takes longer than the average allows.
    steps = FileSteps(slow_step=0.002, stall=3600.0, clock=_Clock())
    for _ in range(30):
        if steps.in_threads:
            break
        await steps.run(time.sleep, 0.005)
    assert steps.in_threads


async def test_a_failing_step_raises_its_own_error_on_the_loop_and_in_a_thread() -> None:
    clock = _Clock()
    steps = FileSteps(stall=0.01, clock=clock)
    with pytest.raises(OSError, match="unreadable"):
        await steps.run(_fails)
    await steps.run(_slow)
    assert steps.in_threads
    with pytest.raises(OSError, match="unreadable"):
        await steps.run(_fails)


async def test_an_ingest_reads_small_text_files_on_the_loop_and_bigger_ones_in_threads(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Never judged slow here (a loaded machine must not change the route under test).
    monkeypatch.setattr(ingest_processor, "SOURCE_STEPS", FileSteps(slow_step=3600.0, stall=3600.0))
    monkeypatch.setattr(outcome_prep, "SPOOL_STEPS", FileSteps(slow_step=3600.0, stall=3600.0))
    docs = tmp_path / "docs"
    docs.mkdir()
    small = [docs / f"small{n}.txt" for n in range(3)]
    for n, path in enumerate(small):
        path.write_text(f"small document {n}\n" * 20, encoding="utf-8")
    bigger = docs / "bigger.txt"  # over the loop's limit, under the in-process one
    bigger.write_text("a bigger text document\n" * 5_000, encoding="utf-8")
    assert bigger.stat().st_size > ingest_processor.LOOP_MAX_BYTES
    assert bigger.stat().st_size <= ingest_processor.INLINE_MAX_BYTES
    ledger = await Ledger.open(pipeline_settings(sqlite_url, tmp_path / "home"))
    try:
        await ledger.queue.submit(
            BatchSpec(id="loop", processor="ingest"), source_specs([*small, bigger])
        )
        _OPENS.seen.clear()
        _OPENS.folder = str(docs)
        try:
            stats = await Worker(ledger, batch_ids=["loop"]).run(until_complete=True)
        finally:
            _OPENS.folder = None
        assert stats.done == 4
        loop_thread = threading.get_ident()
        threads: dict[str, set[int]] = {}
        for name, thread in _OPENS.seen:
            threads.setdefault(name, set()).add(thread)
        assert set(threads) == {p.name for p in [*small, bigger]}
        for path in small:
            assert threads[path.name] == {loop_thread}
        # Its first bytes are judged on the loop with its status; its whole text is read in
        # a thread.
        assert threads[bigger.name] - {loop_thread}
        for n in range(3):
            assert len(await ledger.index.search(f"small document {n}", 5)) == 1
    finally:
        await ledger.close()
