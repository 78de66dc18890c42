"""The rows of an upload kept in the object store, on both backends: parts and tail add up
to the offset, every record is fenced by the writer's token, and a recorded part takes the
tail it contains with it."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.errors import LeaseLost
from ledger.model import Upload, UploadSpec
from ledger.uploads import parts as upload_parts
from ledger.uploads.parts import StoredPart, StoreMismatch, StoreState
from tests.conftest import FakeClock

KEY = "s3://bucket/uploads/acme/b1/tus-x"


async def _record(
    ledger: Ledger,
    upload_id: str,
    token: str,
    *,
    parts: list[StoredPart],
    tail: tuple[int, bytes] | None,
    offset: int,
    release: bool = False,
) -> Upload:
    return await ledger.runner.run(
        partial(
            upload_parts.record, upload_id=upload_id, token=token, parts=parts, tail=tail,
            offset=offset, lease_seconds=60, expiry_seconds=3600, release=release,
        )
    )  # fmt: skip


async def _state(ledger: Ledger, upload_id: str) -> StoreState:
    upload = await ledger.uploads.get(upload_id)
    return await ledger.runner.run(partial(upload_parts.state, upload=upload), write=False)


async def _start(ledger: Ledger, upload_id: str, store_id: str) -> Upload | None:
    return await ledger.runner.run(
        partial(upload_parts.start, upload_id=upload_id, store_upload_id=store_id, store_key=KEY)
    )


async def test_parts_and_tails_add_up_to_the_offset_and_are_fenced(
    ledger: Ledger, clock: FakeClock, tmp_path: Path
) -> None:
    spec = UploadSpec(batch_id="b1", length=100, owner="acme", filename="f.bin")
    upload = await ledger.uploads.create(spec, folder=tmp_path)
    started = await _start(ledger, upload.id, "store-1")
    assert started is not None and (started.store_upload_id, started.store_key) == ("store-1", KEY)
    assert await _start(ledger, upload.id, "store-2") is None  # the first one stays

    await ledger.uploads.acquire(upload.id, "t1", owner="acme")
    await _record(ledger, upload.id, "t1", parts=[], tail=(0, b"abc"), offset=3)
    await _record(ledger, upload.id, "t1", parts=[], tail=(3, b"de"), offset=5)
    assert await _state(ledger, upload.id) == StoreState(0, 1, b"abcde")

    # A part made of the tail and new bytes replaces the tail it contains.
    part = StoredPart(1, "etag-1", 0, 40)
    recorded = await _record(ledger, upload.id, "t1", parts=[part], tail=(40, b"xy"), offset=42)
    assert recorded.offset == 42
    assert await _state(ledger, upload.id) == StoreState(40, 2, b"xy")

    # Another writer took the upload over: the old one records nothing any more.
    clock.advance(ledger.settings.tus_lease_seconds + 1)
    await ledger.uploads.acquire(upload.id, "t2", owner="acme")
    with pytest.raises(LeaseLost):
        await _record(
            ledger, upload.id, "t1", parts=[StoredPart(2, "e", 40, 10)], tail=None, offset=50
        )
    # Nor does the offset ever go back.
    with pytest.raises(LeaseLost):
        await _record(ledger, upload.id, "t2", parts=[], tail=None, offset=41)
    assert await _state(ledger, upload.id) == StoreState(40, 2, b"xy")

    released = await _record(ledger, upload.id, "t2", parts=[], tail=None, offset=42, release=True)
    assert released.writer_token is None

    parts = partial(upload_parts.parts, upload_id=upload.id)
    assert await ledger.runner.run(parts, write=False) == [part]

    await ledger.uploads.terminate(upload.id, owner="acme")

    await ledger.runner.run(partial(upload_parts.forget, ids=[upload.id]))
    assert await ledger.runner.run(parts, write=False) == []


async def test_a_tail_that_does_not_add_up_is_refused(ledger: Ledger, tmp_path: Path) -> None:
    spec = UploadSpec(batch_id="b1", length=None, owner="acme", filename="f.bin")
    upload = await ledger.uploads.create(spec, folder=tmp_path)
    await _start(ledger, upload.id, "store-1")
    await ledger.uploads.acquire(upload.id, "t1", owner="acme")
    await _record(ledger, upload.id, "t1", parts=[], tail=(0, b"abc"), offset=3)
    await ledger.uploads.renew(upload.id, "t1", offset=5)  # counted bytes nothing holds
    with pytest.raises(StoreMismatch):
        await _state(ledger, upload.id)
