"""Admission of new uploads on both backends: the batch id is reserved for the uploader's
tenant at creation, and a tenant's unfinished uploads stay within its byte quota, also when
several requests race (two ledgers, as two server processes would be)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from ledger.app import Ledger
from ledger.errors import Conflict, QuotaExceeded
from ledger.model import BatchSpec, UploadSpec
from tests.conftest import FakeClock, settings_for

QUOTA = 1000


@pytest.fixture
async def pair(db_url: str, clock: FakeClock) -> AsyncIterator[tuple[Ledger, Ledger]]:
    """Two ledgers on one database, as two server processes would share it."""
    settings = settings_for(db_url, tenant_upload_quota_bytes=QUOTA, tus_max_bytes=600)
    first = await Ledger.open(settings, clock=clock)
    second = await Ledger.open(settings, clock=clock)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


def _spec(batch: str, owner: str, length: int | None = 10) -> UploadSpec:
    return UploadSpec(batch_id=batch, length=length, owner=owner, filename="f.txt")


async def _batches_of(ledger: Ledger, owner: str) -> int:
    page = await ledger.reads.batches(owner=owner)
    return len(page.items)


async def test_the_batch_is_reserved_when_the_upload_is_created(
    pair: tuple[Ledger, Ledger], tmp_path: Path
) -> None:
    ledger, _ = pair
    upload = await ledger.uploads.create(_spec("held", "acme"), folder=tmp_path)
    batch = await ledger.reads.batch("held", owner="acme")
    assert (batch.owner, batch.total) == ("acme", 0)
    with pytest.raises(Conflict):
        await ledger.uploads.create(_spec("held", "globex"), folder=tmp_path)
    with pytest.raises(Conflict):
        await ledger.queue.submit(BatchSpec(id="held", processor="ingest", owner="globex"), [])

    await ledger.uploads.acquire(upload.id, "t1", owner="acme")
    done = await ledger.uploads.complete(upload.id, "t1", sha256="ab" * 32, size=10, mtime_ns=1)
    assert done.document_id is not None
    assert (await ledger.reads.batch("held", owner="acme")).total == 1


async def test_two_tenants_racing_for_one_batch_id(
    pair: tuple[Ledger, Ledger], tmp_path: Path
) -> None:
    first, second = pair

    async def create(ledger: Ledger, batch: str, owner: str) -> str | None:
        try:
            await ledger.uploads.create(_spec(batch, owner), folder=tmp_path)
        except Conflict:
            return None
        return owner

    for round_ in range(6):
        batch = f"race-{round_}"
        winners = await asyncio.gather(
            create(first, batch, "acme"),
            create(second, batch, "globex"),
            create(second, batch, "acme"),
            create(first, batch, "globex"),
        )
        owner = (await first.reads.batch(batch)).owner
        # Every creation of the owner got in, every one of the other tenant was refused.
        assert sorted(w for w in winners if w is not None) == [owner, owner]
        async with first.runner.transaction(write=False) as conn:
            owners = (
                await conn.execute(
                    text("SELECT DISTINCT owner FROM uploads WHERE batch_id = :b"), {"b": batch}
                )
            ).all()
        assert owners == [(owner,)]


async def test_the_quota_bounds_unfinished_uploads(
    pair: tuple[Ledger, Ledger], tmp_path: Path
) -> None:
    ledger, _ = pair
    kept = await ledger.uploads.create(_spec("q1", "acme", 400), folder=tmp_path)
    await ledger.uploads.create(_spec("q1", "acme", 400), folder=tmp_path)
    with pytest.raises(QuotaExceeded):
        await ledger.uploads.create(_spec("q-new", "acme", 201), folder=tmp_path)
    # Nothing is left of the refused upload: neither a row nor its batch.
    assert await _batches_of(ledger, "acme") == 1
    with pytest.raises(QuotaExceeded):  # a deferred length counts as the largest upload
        await ledger.uploads.create(_spec("q1", "acme", None), folder=tmp_path)
    await ledger.uploads.create(_spec("q1", "acme", 200), folder=tmp_path)  # exactly full
    await ledger.uploads.create(_spec("q2", "globex", 600), folder=tmp_path)  # not acme's

    # A finished or terminated upload no longer counts.
    await ledger.uploads.terminate(kept.id, owner="acme")
    await ledger.uploads.create(_spec("q1", "acme", 400), folder=tmp_path)


async def test_racing_creations_cannot_overrun_the_quota(
    pair: tuple[Ledger, Ledger], tmp_path: Path
) -> None:
    first, second = pair
    # The batch exists already: nothing else makes the creations wait for each other.
    await first.queue.submit(BatchSpec(id="q-race", processor="ingest", owner="acme"), [])

    async def create(ledger: Ledger) -> bool:
        try:
            await ledger.uploads.create(_spec("q-race", "acme", 501), folder=tmp_path)
        except QuotaExceeded:
            return False
        return True

    results = await asyncio.gather(*(create(first if i % 2 else second) for i in range(8)))
    assert results.count(True) == 1
