"""The worker runtime and a parent's member files: kept when the finish creates the
children, removed when it does not (here: the batch was cancelled while the parent ran)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from ledger.app import Ledger
from ledger.model import BatchSpec, SourceSpec
from ledger.states import DocumentStatus
from ledger.worker.runtime import Worker
from tests.ingest.child_processors import GATE

NAME = "tests.ingest.child_processors:gated_member"


async def wait_for_file(folder: Path) -> None:
    for _ in range(1500):  # generous: 30 s
        if await asyncio.to_thread(os.listdir, folder):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the processor never wrote its member")


async def run_gated(led: Ledger, folder: Path, batch_id: str, *, cancel: bool) -> None:
    spec = BatchSpec(id=batch_id, processor=NAME, options={"folder": str(folder)})
    await led.queue.submit(spec, [SourceSpec(f"/in/{batch_id}.zip")])
    worker = asyncio.create_task(Worker(led, batch_ids=[batch_id]).run(until_complete=True))
    await wait_for_file(folder)
    if cancel:
        await led.control.cancel(batch_id)
    (folder / GATE).write_text("go")
    await asyncio.wait_for(worker, timeout=60)


async def test_member_files_stay_with_created_children(led: Ledger, tmp_path: Path) -> None:
    folder = tmp_path / "kept"
    folder.mkdir()
    await run_gated(led, folder, "kept", cancel=False)
    docs = (await led.reads.documents("kept")).items
    (child,) = [d for d in docs if d.parent_id is not None]
    assert await asyncio.to_thread(os.path.exists, child.source)


async def test_member_files_go_when_the_finish_creates_no_children(
    led: Ledger, tmp_path: Path
) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    await run_gated(led, folder, "gone", cancel=True)
    (parent,) = (await led.reads.documents("gone")).items
    assert parent.status is DocumentStatus.DONE  # its work is kept, nothing new starts
    assert sorted(p.name for p in folder.iterdir()) == [GATE]
