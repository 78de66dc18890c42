"""A processor for the runtime tests of child documents: it extracts one member file, then
waits for the test to open a gate (so the test can act between extraction and finish)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from ledger.model import ChildFile
from ledger.processors.base import Document, Done

GATE = "gate"  # the file whose existence lets the processor return


async def gated_member(doc: Document) -> Done:
    if doc.meta:  # a child: nothing inside it
        return Done({"child": True})
    folder = Path(doc.options["folder"])
    member = folder / f"{doc.id}-0.txt"
    data = b"a member\n"
    member.write_bytes(data)
    # A file, not an Event: the gate is opened by the test, outside this processor.
    while not await asyncio.to_thread((folder / GATE).exists):  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    child = ChildFile(
        member_path="m.txt",
        source=str(member),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        meta={"member_path": "m.txt", "member_of": {"source": doc.source, "meta": None}},
    )

    def discard() -> None:
        os.unlink(member)

    return Done({"members": 1}, children=(child,), discard=discard)
