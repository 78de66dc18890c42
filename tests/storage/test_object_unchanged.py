"""The unchanged check of object sources compares the ETag with size and last-modified time,
at submit into a new batch, in the dry-run plan and on the worker, on SQLite and PostgreSQL
against a real S3-compatible server (moto).

S3 reports last-modified in whole seconds, so an object replaced within the same second by
one of the same size keeps both facts; the test forges that case by recording the new
object's time on the indexed document, which leaves the ETag as the only difference."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec, SourceSpec, UnchangedSkip
from ledger.storage import objects
from ledger.storage.urls import ObjectUrl
from ledger.worker.runtime import Worker
from tests.conftest import sql
from tests.helpers.s3 import CREDENTIALS, S3Server
from tests.pipeline.support import pipeline_settings, sync_url_of

pytestmark = pytest.mark.timeout(120)
FIRST = "The first text of the report, kept in a bucket. " * 20


@pytest.fixture
async def led(
    db_url: str, tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Ledger]:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    settings = pipeline_settings(db_url, tmp_path / "home", s3_endpoint_url=s3.endpoint)
    ledger = await Ledger.open(settings)
    try:
        yield ledger
    finally:
        await ledger.close()


def _listed(s3: S3Server, prefix: str) -> list[SourceSpec]:
    """What a listing of the prefix records at submit (as the CLI and the API do)."""
    client = objects.client(None, s3.endpoint)
    return [
        SourceSpec(
            source=str(info.url),
            size=info.size,
            mtime_ns=info.last_modified_ns,
            meta={"etag": info.etag},
        )
        for info in objects.iter_objects(client, ObjectUrl.parse(prefix))
    ]


async def _run(led: Ledger, batch_id: str, sources: list[SourceSpec]) -> int:
    """Submit a new batch of ``sources`` skipping unchanged ones; run it; how many skipped."""
    result = await led.queue.submit(
        BatchSpec(id=batch_id, processor="ingest"), sources, skip_unchanged=UnchangedSkip()
    )
    await Worker(led, batch_ids=[batch_id]).run(until_complete=True)
    return result.skipped


async def test_an_object_replaced_with_the_same_size_and_time_is_processed_again(
    led: Ledger, db_url: str, s3: S3Server
) -> None:
    bucket = s3.bucket()
    client = s3.client()
    replaced = "Another text in the report, the same length".ljust(len(FIRST), "!")
    client.put_object(Bucket=bucket, Key="in/report.txt", Body=FIRST.encode())
    client.put_object(Bucket=bucket, Key="in/kept.txt", Body=b"An untouched object. " * 30)
    prefix = f"s3://{bucket}/in/"
    before = _listed(s3, prefix)
    assert await _run(led, "one", before) == 0

    client.put_object(Bucket=bucket, Key="in/report.txt", Body=replaced.encode())
    sources = _listed(s3, prefix)
    report = next(s for s in sources if s.source.endswith("report.txt"))
    url = sync_url_of(db_url)
    (old,) = [s for s in before if s.source == report.source]
    assert report.size == old.size and report.meta != old.meta  # same size, a new ETag
    # Forge the same last-modified time: only the ETag tells the two objects apart now.
    sql(
        url,
        "UPDATE documents SET source_mtime_ns = :t WHERE batch_id = 'one' AND source = :s",
        t=report.mtime_ns,
        s=report.source,
    )

    plan = await led.index.plan(BatchSpec(id="two", processor="ingest"), sources,
                          skip_unchanged=UnchangedSkip())  # fmt: skip
    assert plan.changed.sources == [report.source]
    assert plan.unchanged.sources == [f"{prefix}kept.txt"]
    assert await _run(led, "two", sources) == 1  # the untouched object only

    rows = sql(
        url,
        "SELECT source, status, error_code FROM documents WHERE batch_id = 'two' ORDER BY source",
    )
    assert rows == [(f"{prefix}kept.txt", "skipped", None), (report.source, "done", None)]
    found = await led.index.search("Another", batch_id="two")
    assert [hit.source_name for hit in found] == [report.source]
    assert not await led.index.search("first", batch_id="two")
