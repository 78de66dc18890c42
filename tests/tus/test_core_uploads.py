"""The upload rows on both backends: leases, fencing, exactly-once completion, expiry."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.errors import Conflict, Gone, InvalidInput, LeaseLost, Locked, NotFound
from ledger.model import BatchSpec, UploadSpec
from ledger.states import BatchState, UploadState
from tests.conftest import FakeClock

SHA = "ab" * 32


async def _new(ledger: Ledger, tmp_path: Path, batch: str = "b1", length: int | None = 10) -> str:
    upload = await ledger.uploads.create(
        UploadSpec(batch_id=batch, length=length, owner="acme", filename="f.txt"),
        folder=tmp_path,
    )
    assert upload.path == str(tmp_path / upload.id)
    return upload.id


async def test_one_writer_at_a_time_and_fenced_writes(
    ledger: Ledger, clock: FakeClock, tmp_path: Path
) -> None:
    upload_id = await _new(ledger, tmp_path)
    held = await ledger.uploads.acquire(upload_id, "t1", owner="acme")
    assert held.writer_token == "t1"
    with pytest.raises(Locked):
        await ledger.uploads.acquire(upload_id, "t2", owner="acme")
    with pytest.raises(NotFound):
        await ledger.uploads.acquire(upload_id, "t2", owner="globex")
    assert (await ledger.uploads.renew(upload_id, "t1", offset=4)).offset == 4

    clock.advance(ledger.settings.tus_lease_seconds + 1)  # t1 stalled past its lease
    taken = await ledger.uploads.acquire(upload_id, "t2", owner="acme")
    assert (taken.writer_token, taken.offset) == ("t2", 4)
    with pytest.raises(LeaseLost):
        await ledger.uploads.renew(upload_id, "t1", offset=9)
    with pytest.raises(LeaseLost):
        await ledger.uploads.commit(upload_id, "t1", offset=9)
    await ledger.uploads.release(upload_id, "t1")  # not the holder: changes nothing
    assert (await ledger.uploads.get(upload_id)).writer_token == "t2"

    # A live lease can be taken over only by a caller that proves the writer is gone.
    taken = await ledger.uploads.acquire(upload_id, "t3", owner="acme", take_over=True)
    assert taken.writer_token == "t3"
    done = await ledger.uploads.commit(upload_id, "t3", offset=6)
    assert (done.offset, done.writer_token, done.locked_until) == (6, None, None)


async def test_completion_creates_the_document_exactly_once(ledger: Ledger, tmp_path: Path) -> None:
    upload_id = await _new(ledger, tmp_path, batch="made-on-completion")
    await ledger.uploads.acquire(upload_id, "t1", owner="acme")
    with pytest.raises(InvalidInput):
        await ledger.uploads.complete(upload_id, "t1", sha256=SHA, size=9, mtime_ns=1)
    done = await ledger.uploads.complete(upload_id, "t1", sha256=SHA, size=10, mtime_ns=1)
    assert (done.state, done.offset, done.sha256) == (UploadState.COMPLETE, 10, SHA)
    assert done.document_id is not None
    with pytest.raises(LeaseLost):
        await ledger.uploads.complete(upload_id, "t1", sha256=SHA, size=10, mtime_ns=1)
    again = await ledger.uploads.acquire(upload_id, "t2", owner="acme")
    assert again.state == UploadState.COMPLETE
    assert again.writer_token is None  # nothing to write: no lease taken

    batch = await ledger.reads.batch("made-on-completion", owner="acme")
    assert (batch.owner, batch.processor, batch.total) == ("acme", "ingest", 1)
    page = await ledger.reads.documents("made-on-completion", owner="acme")
    doc = page.items[0]
    assert (doc.id, doc.sha256, (doc.meta or {})["filename"]) == (done.document_id, SHA, "f.txt")
    with pytest.raises(Conflict):
        await ledger.uploads.terminate(upload_id, owner="acme")


async def test_a_cancelled_batch_refuses_uploads(ledger: Ledger, tmp_path: Path) -> None:
    await ledger.queue.submit(BatchSpec(id="c1", processor="noop", owner="acme"), [])
    upload_id = await _new(ledger, tmp_path, batch="c1")
    await ledger.control.cancel("c1", owner="acme")
    assert (await ledger.reads.batch("c1")).state == BatchState.CANCELLED
    await ledger.uploads.acquire(upload_id, "t1", owner="acme")
    with pytest.raises(Conflict):
        await ledger.uploads.complete(upload_id, "t1", sha256=SHA, size=10, mtime_ns=None)
    assert (await ledger.uploads.get(upload_id)).state == UploadState.RECEIVING  # unchanged
    with pytest.raises(Conflict):
        await _new(ledger, tmp_path, batch="c1")
    await ledger.queue.submit(BatchSpec(id="theirs", processor="noop", owner="globex"), [])
    with pytest.raises(Conflict):
        await _new(ledger, tmp_path, batch="theirs")


async def test_deferred_length_is_set_once(ledger: Ledger, tmp_path: Path) -> None:
    upload_id = await _new(ledger, tmp_path, length=None)
    await ledger.uploads.acquire(upload_id, "t1", owner="acme")
    await ledger.uploads.commit(upload_id, "t1", offset=5)
    with pytest.raises(InvalidInput):
        await ledger.uploads.acquire(upload_id, "t2", owner="acme", length=4)
    assert (await ledger.uploads.acquire(upload_id, "t2", owner="acme", length=8)).length == 8
    await ledger.uploads.release(upload_id, "t2")
    with pytest.raises(InvalidInput):
        await ledger.uploads.acquire(upload_id, "t3", owner="acme", length=9)


async def test_expiry_termination_and_file_removal(
    ledger: Ledger, clock: FakeClock, tmp_path: Path
) -> None:
    idle = await _new(ledger, tmp_path)
    busy = await _new(ledger, tmp_path)
    ended = await _new(ledger, tmp_path)
    await ledger.uploads.terminate(ended, owner="acme")
    with pytest.raises(NotFound):
        await ledger.uploads.get(ended)
    clock.advance(ledger.settings.tus_expiry_seconds - 1)
    await ledger.uploads.acquire(busy, "t1", owner="acme")  # being written when it expires
    clock.advance(2)
    with pytest.raises(Gone):
        await ledger.uploads.get(idle)
    assert await ledger.uploads.expire() == 1
    assert {i for i, _ in await ledger.uploads.files_to_remove()} == {idle, ended}
    await ledger.uploads.files_removed([idle, ended])
    assert await ledger.uploads.files_to_remove() == []
    # The writer still counts its bytes; once its lease runs out, the upload expires too.
    await ledger.uploads.release(busy, "t1")
    assert await ledger.uploads.expire() == 1
    assert [i for i, _ in await ledger.uploads.files_to_remove()] == [busy]
