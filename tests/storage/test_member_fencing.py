"""Member files are fenced by the parent's lease, in the local storage folder and in a real
S3-compatible store (moto), on SQLite and PostgreSQL: two real attempts at one archive, the
first outrun (its lease expired while it held its extracted members), the second winning.

The first attempt then tries to finish and cleans up as a worker does: its finish is
refused, and what it removes is its own, so every child of the winner still reads its member;
nothing of the first attempt is left, and deleting the batch leaves no member file or key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec, ClaimedDocument
from ledger.queue import deletion
from ledger.storage import MEMBERS_FOLDER
from ledger.worker.outcomes import clean_up, outcome_of
from ledger.worker.runtime import Worker
from tests.conftest import sql
from tests.helpers.s3 import CREDENTIALS, S3Server
from tests.ingest import container_fixtures as cf
from tests.pipeline.support import pipeline_settings, source_specs, sync_url_of

pytestmark = pytest.mark.timeout(180)
MEMBERS = {"a.txt": b"An alpaca grazes on the hill.\n" * 20, "b.txt": b"A bison rests.\n" * 20}


@pytest.fixture(params=["local", "store"])
async def led(
    request: pytest.FixtureRequest, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Ledger]:
    """A ledger whose members go to the local storage folder, or to the object store."""
    store: dict[str, str] = {}
    if request.param == "store":
        s3: S3Server = request.getfixturevalue("s3")
        for name, value in CREDENTIALS.items():
            monkeypatch.setenv(name, value)
        store = {"storage_url": f"s3://{s3.bucket()}/uploads", "s3_endpoint_url": s3.endpoint}
    ledger = await Ledger.open(pipeline_settings(db_url, tmp_path / "home", **store))
    try:
        yield ledger
    finally:
        await ledger.close()


def _members(led: Ledger, request: pytest.FixtureRequest) -> set[str]:
    """Every member file of the local folder, or member object of the store, by its source."""
    found = {str(p) for p in (led.settings.storage / MEMBERS_FOLDER).rglob("*") if p.is_file()}
    url = led.settings.storage_url
    if url is not None:
        s3: S3Server = request.getfixturevalue("s3")
        bucket = url.removeprefix("s3://").split("/")[0]
        found |= {f"s3://{bucket}/{k}" for k in s3.keys(bucket) if "/members/" in k}
    return found


async def _claim(led: Ledger) -> tuple[str, ClaimedDocument]:
    worker = await led.workers.register(concurrency=1, processors=["ingest"])
    (doc,) = await led.queue.claim(worker, 1, batch_ids=["fence"])
    return worker, doc


async def test_an_outrun_attempt_never_removes_the_winners_members(
    led: Ledger, db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    box = cf.make_zip(tmp_path / "box.zip", MEMBERS)
    await led.queue.submit(BatchSpec(id="fence", processor="ingest"), source_specs([box]))
    runner = Worker(led, batch_ids=["fence"])  # its registry and context run the processor
    url = sync_url_of(db_url)

    first, one = await _claim(led)
    process = runner.registry.get(runner.context, one.processor, one.options)
    lost_outcome = outcome_of(one, await process(one))
    assert len(_members(led, request)) == len(MEMBERS)  # extracted, not yet recorded
    # Its lease runs out while it holds them: the next claim rescues and retakes the parent.
    sql(url, "UPDATE documents SET lease_expires_at = '2000-01-01 00:00:00' WHERE id = :i",
        i=one.id)  # fmt: skip
    second, two = await _claim(led)
    assert two.id == one.id and two.lease_token != one.lease_token
    won_outcome = outcome_of(two, await process(two))
    won = await led.queue.complete(second, [won_outcome])
    assert won.adopted == [two.id]
    clean_up([won_outcome], set(won.adopted))

    lost = await led.queue.complete(first, [lost_outcome])
    assert lost.lost == [one.id] and lost.adopted == []
    clean_up([lost_outcome], set(lost.adopted))  # the old owner cleans up what it made

    children = {r[0] for r in sql(url, "SELECT source FROM documents WHERE parent_id = :p",
                                  p=one.id)}  # fmt: skip
    assert len(children) == len(MEMBERS)
    assert all(two.lease_token in source and one.lease_token not in source for source in children)
    assert _members(led, request) == children  # the winner's, and nothing of the first attempt

    await runner.run(until_complete=True)
    rows = sql(url, "SELECT status, error_code FROM documents WHERE parent_id = :p", p=one.id)
    assert rows == [("done", None)] * len(MEMBERS)
    assert await led.index.search("alpaca", batch_id="fence")
    assert await led.index.search("bison", batch_id="fence")

    await deletion.delete_batch(led.runner, "fence", owner=None, force=False, step_rows=100)
    assert _members(led, request) == set()
    assert box.exists()
