"""The core pieces the API needs: migration 0002, API keys, metrics, scrape-time reads."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from alembic import command
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from ledger import metrics
from ledger.app import Ledger
from ledger.db import migrate
from ledger.model import BatchSpec, SourceSpec
from ledger.settings import Settings
from tests.api.conftest import Server


def test_migration_0002_upgrade_check_downgrade(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url)
    command.check(migrate.alembic_config(url))  # models and migrations agree
    migrate.downgrade(url, "0001")
    sync = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with sync.connect() as conn:
        tables = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master"))}
    assert "api_keys" not in tables
    assert "batch_requests" not in tables
    migrate.upgrade(url)
    command.check(migrate.alembic_config(url))
    sync.dispose()


@pytest.fixture
async def fresh(tmp_path: Path) -> Ledger:
    url = f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"
    await migrate.upgrade_async(url)
    return await Ledger.open(Settings(home=tmp_path, database_url=url))


def _database_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.glob("k.db*")))


async def test_api_keys(fresh: Ledger, tmp_path: Path) -> None:
    async with fresh as ledger:
        key_id, key = await ledger.keys.create("acme")
        _, other = await ledger.keys.create("globex")
        assert key.startswith(f"ldg_{key_id}_")
        assert await ledger.keys.authenticate(key) == "acme"
        assert await ledger.keys.authenticate(other) == "globex"
        assert await ledger.keys.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        assert await ledger.keys.authenticate(f"ldg_{key_id}_") is None
        assert await ledger.keys.authenticate("") is None
        listed = {k.id: k for k in await ledger.keys.list_keys()}
        assert listed[key_id].tenant == "acme"
        assert key.startswith(listed[key_id].prefix)
        await ledger.keys.revoke(key_id)
        await ledger.keys.revoke(key_id)  # idempotent
        assert await ledger.keys.authenticate(key) is None
        assert await ledger.keys.authenticate(other) == "globex"
        assert (await ledger.keys.list_keys())[0].revoked_at is not None
        with pytest.raises(Exception, match="no API key"):
            await ledger.keys.revoke("nope")
        with pytest.raises(Exception, match="tenant"):
            await ledger.keys.create(" padded ")
    # Only hashes are stored: the database file never holds a key.
    raw = _database_bytes(tmp_path)
    assert key.encode() not in raw
    # The secret is everything after the id: token_urlsafe may itself hold underscores.
    secret = key.removeprefix(f"ldg_{key_id}_")
    assert len(secret) == 43
    assert secret.encode() not in raw


async def test_create_batch_is_idempotent_by_fingerprint(fresh: Ledger) -> None:
    async with fresh as ledger:
        spec = BatchSpec(id="b", processor="noop", owner="acme")
        first = await ledger.queue.create_batch(spec, [SourceSpec("x")], fingerprint="1" * 64)
        assert first.created
        again = await ledger.queue.create_batch(spec, [SourceSpec("y")], fingerprint="1" * 64)
        assert not again.created
        assert again.batch.total == 1  # answered from the record: sources not read
        with pytest.raises(Exception, match="different request"):
            await ledger.queue.create_batch(spec, [SourceSpec("x")], fingerprint="2" * 64)
        other = BatchSpec(id="b", processor="noop", owner="globex")
        with pytest.raises(Exception, match="not available"):
            await ledger.queue.create_batch(other, [SourceSpec("x")], fingerprint="1" * 64)
        depths = await ledger.reads.queue_depths(owner="acme")
        assert [(d.batch_id, d.pending) for d in depths] == [("b", 1)]
        assert await ledger.reads.queue_depths(owner="globex") == []


def test_metric_hooks() -> None:
    def sample(name: str, labels: dict[str, str] | None = None) -> float:
        value = metrics.REGISTRY.get_sample_value(name, labels or {})
        return value or 0.0

    before = sample("ledger_claim_seconds_count")
    attempts = sample("ledger_worker_attempts_total")
    done = sample("ledger_worker_documents_total", {"outcome": "done"})
    metrics.observe_claim(0.01, claimed=4)
    metrics.observe_processed("noop", "done", 0.2)
    assert sample("ledger_claim_seconds_count") == before + 1
    assert sample("ledger_worker_attempts_total") == attempts + 4
    assert sample("ledger_worker_documents_total", {"outcome": "done"}) == done + 1
    assert sample("ledger_processing_seconds_count", {"processor": "noop"}) >= 1


async def test_metrics_endpoint(server: Server) -> None:
    async with server.client("acme") as client:
        await client.post("/api/v1/batches", json={"id": "metrics-b"})
        await client.post(
            "/api/v1/batches/metrics-b/files", files=[("f", ("a.txt", b"a", "text/plain"))]
        )
        # Process-wide figures mix every tenant's work: not for a tenant key.
        assert (await client.get("/metrics")).status_code == 403
    async with server.client("ops") as operator:
        r = await operator.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert {"ledger_claim_seconds", "ledger_processing_seconds", "ledger_documents"} <= set(
        families
    )
    depth = {
        (s.labels["batch"], s.labels["status"]): s.value
        for s in families["ledger_queue_depth"].samples
    }
    assert depth[("metrics-b", "pending")] == 1
    async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
        assert (await anonymous.get("/metrics")).status_code == 401
