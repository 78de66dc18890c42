"""Object sources end to end: the API server and two worker processes, sharing nothing but
the database and a real S3-compatible server (moto) on loopback.

A tenant submits ``s3://`` prefixes inside its own buckets (anything else is a 400 that
echoes the caller's path and never a root); the workers list nothing, they copy each object
to their own spool and ingest it; an object replaced after submit is ``source_changed``, one
deleted is ``source_missing``; a worker SIGKILLed in the middle of copying an object leaves
the document to the other worker, which finishes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import Server, start_server, stop_server
from tests.conftest import sql
from tests.helpers.s3 import S3Server
from tests.reliability.support import (
    WorkerProc,
    batch_complete,
    start_worker,
    stop_all,
    wait_for,
)

TEXT = "Object storage keeps the documents of teams that outgrew one disk. " * 40


@pytest.fixture(scope="module")
def buckets(s3: S3Server) -> dict[str, str]:
    return {"acme": s3.bucket(), "globex": s3.bucket()}


@pytest.fixture(scope="module")
def api(
    s3: S3Server, buckets: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    roots = {tenant: [f"s3://{bucket}/in/"] for tenant, bucket in buckets.items()}
    srv = start_server(
        tmp_path_factory.mktemp("object-sources"),
        {**s3.env(), "LEDGER_AUTH": "on", "LEDGER_TENANT_ROOTS": json.dumps(roots)},
        tenants=("acme", "globex"),
    )
    yield srv
    stop_server(srv)


def _db(api: Server) -> str:
    """The server's database as a synchronous URL (for SQL checks and worker processes)."""
    return api.db_url.replace("sqlite+aiosqlite://", "sqlite://")


def _workers(api: Server, s3: S3Server, batch: str, n: int, **settings: object) -> list[WorkerProc]:
    return [
        start_worker(
            _db(api),
            [batch],
            api.home.parent / f"workers-{batch}",
            env=s3.env(),
            home=api.home.parent / f"worker-{batch}-{i}",  # each machine its own spool
            poll_seconds=0.05,
            backoff_base_seconds=0.01,
            **settings,
        )
        for i in range(n)
    ]


def _statuses(api: Server, batch: str) -> dict[str, tuple[str, str | None]]:
    rows = sql(
        _db(api),
        "SELECT source, status, error_code FROM documents WHERE batch_id = :b",
        b=batch,
    )
    return {source.rsplit("/", 1)[-1]: (status, code) for source, status, code in rows}


async def test_a_tenant_ingests_its_bucket_and_changed_or_gone_objects_fail_clearly(
    api: Server, s3: S3Server, buckets: dict[str, str]
) -> None:
    bucket = buckets["acme"]
    client = s3.client()
    names = [f"note-{i}.txt" for i in range(6)]
    for name in names:
        client.put_object(Bucket=bucket, Key=f"in/run1/{name}", Body=f"{name}: {TEXT}".encode())
    client.put_object(Bucket=bucket, Key="in/run1/skip.md", Body=b"# left out by exclude")
    async with api.client("acme") as acme:
        made = await acme.post(
            "/api/v1/batches",
            json={
                "id": "objects-1",
                "paths": [f"s3://{bucket}/in/run1/"],
                "exclude": ["*.md"],
            },
        )
        assert made.status_code == 201, made.text
    assert len(_statuses(api, "objects-1")) == len(names)
    # Changed and removed after submit, before any worker reads them.
    client.put_object(Bucket=bucket, Key="in/run1/note-0.txt", Body=b"another text entirely")
    client.delete_object(Bucket=bucket, Key="in/run1/note-1.txt")
    workers = _workers(api, s3, "objects-1", 2)
    try:
        await wait_for(
            lambda: batch_complete(_db(api), "objects-1"), timeout=120, what="batch complete"
        )
    finally:
        stop_all(workers)
    found = _statuses(api, "objects-1")
    assert found.pop("note-0.txt") == ("failed", "source_changed")
    assert found.pop("note-1.txt") == ("failed", "source_missing")
    assert found == dict.fromkeys(names[2:], ("done", None))
    chunks = sql(
        _db(api),
        "SELECT count(*) FROM chunks JOIN documents d ON d.id = chunks.document_id "
        "WHERE d.batch_id = 'objects-1'",
    )[0][0]
    assert chunks >= len(names) - 2
    # Nothing of the copies is left in the workers' spools.
    assert not list(api.home.parent.glob("worker-objects-1-*/spool/*.source*"))


@pytest.mark.parametrize(
    ("tenant", "path"),
    [
        ("acme", "s3://{globex}/in/"),  # another tenant's bucket
        ("acme", "s3://{acme}/private/"),  # the tenant's bucket, outside its prefix
        ("acme", "s3://{acme}/in-other/"),  # a prefix that only starts like the root
        ("acme", "s3://{acme}/in/../private/"),
    ],
)
async def test_object_paths_outside_the_tenants_roots_are_refused_without_naming_a_root(
    api: Server, buckets: dict[str, str], tenant: str, path: str
) -> None:
    sent = path.format(**buckets)
    async with api.client(tenant) as client:
        refused = await client.post("/api/v1/batches", json={"paths": [sent]})
    assert refused.status_code == 400, refused.text
    text = refused.text.replace(json.dumps(sent)[1:-1], "")
    for bucket in buckets.values():
        assert f"{bucket}/in" not in text
    assert sent in refused.json()["detail"]


async def test_a_worker_killed_while_copying_an_object_leaves_it_to_the_other(
    api: Server, s3: S3Server, buckets: dict[str, str], tmp_path: Path
) -> None:
    bucket = buckets["acme"]
    client = s3.client()
    big = ("A line of a long object that takes a while to copy.\n" * 600_000).encode()
    client.put_object(Bucket=bucket, Key="in/run2/big.txt", Body=big)
    async with api.client("acme") as acme:
        made = await acme.post(
            "/api/v1/batches",
            json={"id": "objects-2", "paths": [f"s3://{bucket}/in/run2/"], "max_attempts": 3},
        )
        assert made.status_code == 201, made.text
    [first] = _workers(api, s3, "objects-2", 1, lease_seconds=2)
    spool = api.home.parent / "worker-objects-2-0" / "spool"
    try:
        await wait_for(
            lambda: any(spool.glob("*.source.partial")),
            timeout=60,
            what="a copy in progress",
            interval=0.002,
        )
        first.kill()
        assert any(spool.glob("*.source.partial"))  # it died in the middle of the copy
        [second] = _workers(api, s3, "objects-2", 1, lease_seconds=2)
        await wait_for(
            lambda: batch_complete(_db(api), "objects-2"), timeout=120, what="batch complete"
        )
    finally:
        stop_all([first, *([second] if "second" in locals() else [])])
    assert _statuses(api, "objects-2") == {"big.txt": ("done", None)}
    outcomes = sql(
        _db(api),
        "SELECT a.outcome FROM attempts a JOIN documents d ON d.id = a.document_id "
        "WHERE d.batch_id = 'objects-2' ORDER BY a.id",
    )
    assert [o for (o,) in outcomes][-1] == "done"


async def test_an_allowed_prefix_with_no_objects_is_a_400(
    api: Server, buckets: dict[str, str]
) -> None:
    sent = f"s3://{buckets['globex']}/in/nothing-here/"
    async with api.client("globex") as client:
        refused = await client.post("/api/v1/batches", json={"paths": [sent]})
    assert refused.status_code == 400, refused.text
    assert "hold no files" in refused.json()["detail"]
