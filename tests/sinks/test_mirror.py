"""Sinks against real embedded stores: LanceDB in a folder and Qdrant in local mode.

A batch with an embedder and both sinks is mirrored exactly (ids, payloads, vectors equal
to SQL); a changed source replaces its points; a source superseded by a batch without
sinks, and a deleted batch, leave nothing behind in the stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec, SinkProgress
from ledger.sinks.stage import SinkStage
from tests.conftest import sql
from tests.embed.server import EmbeddingServer
from tests.embed.support import embedder_options, make_corpus
from tests.pipeline.support import run_batch, sync_url_of
from tests.sinks.conftest import open_ledger
from tests.sinks.support import KINDS, assert_mirrored, stored_points

pytestmark = pytest.mark.timeout(120)


def options(server: EmbeddingServer, *sinks: str) -> dict[str, Any]:
    return {**embedder_options(server.base_url), "sinks": list(sinks)}


async def drain(led: Ledger) -> int:
    stage = SinkStage(led)
    try:
        return await stage.run_once()
    finally:
        await stage.close()


def rows(url: str) -> list[Any]:
    return sql(url, "SELECT sink, status, document_id, last_error FROM sink_rows ORDER BY id")


async def test_a_batch_is_mirrored_exactly_on_both_backends(
    db_url: str, tmp_path: Path, stores: Path, server: EmbeddingServer
) -> None:
    led = await open_ledger(db_url, tmp_path / "home", stores)
    try:
        corpus = make_corpus(tmp_path / "docs", per_topic=2)
        await run_batch(led, BatchSpec(id="b1", options=options(server, *KINDS)), corpus)
        url = sync_url_of(db_url)
        assert {(r.sink, r.status) for r in rows(url)} == {(k, "pending") for k in KINDS}
        assert await drain(led) == 2 * len(corpus)
        assert {(r.sink, r.status) for r in rows(url)} == {(k, "done") for k in KINDS}
        chunks = sql(url, "SELECT count(*) FROM chunks")[0][0]
        for kind in KINDS:
            assert assert_mirrored(kind, stores, url) == chunks
        assert await drain(led) == 0  # nothing owed twice
        progress = await led.index.sink_progress(["b1"])
        mirrored = SinkProgress(pending=0, done=len(corpus), failed=0, last_error=None)
        assert progress["b1"] == {k: mirrored for k in KINDS}
        assert (await led.reads.progress("b1")).sinks == progress["b1"]
    finally:
        await led.close()


async def test_a_changed_source_replaces_its_points(
    led: Ledger, sqlite_url: str, tmp_path: Path, stores: Path, server: EmbeddingServer
) -> None:
    corpus = make_corpus(tmp_path / "docs", per_topic=1)
    url = sync_url_of(sqlite_url)
    await run_batch(led, BatchSpec(id="v1", options=options(server, *KINDS)), corpus)
    await drain(led)
    before = {kind: stored_points(kind, stores) for kind in KINDS}
    changed = corpus[0]
    changed.write_text("An entirely new text about comets and telescopes.\n" * 40)
    await run_batch(led, BatchSpec(id="v2", options=options(server, *KINDS)), corpus)
    await drain(led)
    for kind in KINDS:
        assert_mirrored(kind, stores, url)
        after = stored_points(kind, stores)
        source_key = next(
            p["source_key"]
            for _, p in before[kind].values()
            if p["display_name"].endswith(changed.name)
        )
        old = {i for i, (_, p) in before[kind].items() if p["source_key"] == source_key}
        new = {i for i, (_, p) in after.items() if p["source_key"] == source_key}
        assert old and new and not old & new  # the old version's points are gone
        assert all(after[i][1]["batch_id"] == "v2" for i in new)


async def test_a_batch_without_the_sink_superseding_a_source_removes_its_points(
    led: Ledger, sqlite_url: str, tmp_path: Path, stores: Path, server: EmbeddingServer
) -> None:
    corpus = make_corpus(tmp_path / "docs", per_topic=1)
    url = sync_url_of(sqlite_url)
    await run_batch(led, BatchSpec(id="with", options=options(server, "lance")), corpus)
    await drain(led)
    corpus[1].write_text("Sourdough needs flour, water and patience.\n" * 30)
    await run_batch(led, BatchSpec(id="without", options=options(server)), corpus[1:2])
    assert sql(url, "SELECT count(*) FROM sink_rows WHERE document_id IS NULL")[0][0] == 1
    await drain(led)
    assert sql(url, "SELECT count(*) FROM sink_rows WHERE document_id IS NULL")[0][0] == 0
    held = assert_mirrored("lance", stores, url)
    names = {p["display_name"] for _, p in stored_points("lance", stores).values()}
    assert held > 0 and not any(n.endswith(corpus[1].name) for n in names)


async def test_deleting_a_batch_removes_its_points_on_both_backends(
    db_url: str, tmp_path: Path, stores: Path, server: EmbeddingServer
) -> None:
    led = await open_ledger(db_url, tmp_path / "home", stores)
    try:
        corpus = make_corpus(tmp_path / "docs", per_topic=1)
        url = sync_url_of(db_url)
        await run_batch(led, BatchSpec(id="keep", options=options(server, *KINDS)), corpus[:3])
        await run_batch(led, BatchSpec(id="gone", options=options(server, *KINDS)), corpus[3:])
        await drain(led)
        await led.control.delete_batch("gone")
        # The rows outlive the batch (no foreign key) and now say: remove these points.
        assert {r.status for r in rows(url) if r.document_id is None} == {"pending"}
        await drain(led)
        assert sql(url, "SELECT count(*) FROM sink_rows WHERE batch_id = 'gone'")[0][0] == 0
        for kind in KINDS:
            assert assert_mirrored(kind, stores, url) > 0
            assert {p["batch_id"] for _, p in stored_points(kind, stores).values()} == {"keep"}
    finally:
        await led.close()


async def test_a_wrong_dimension_fails_the_row_with_its_reason(
    led: Ledger, sqlite_url: str, tmp_path: Path, stores: Path, server: EmbeddingServer
) -> None:
    from qdrant_client import QdrantClient, models

    # The operator points the profile at a collection made for another model.
    client = QdrantClient(path=str(stores / "qdrant"))
    client.create_collection(
        "chunks", vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE)
    )
    client.close()
    corpus = make_corpus(tmp_path / "docs", per_topic=1)
    url = sync_url_of(sqlite_url)
    await run_batch(led, BatchSpec(id="b", options=options(server, "qdrant")), corpus[:2])
    await drain(led)
    failed = [r for r in rows(url) if r.status == "failed"]
    assert len(failed) == 2 and all("dimension 8" in r.last_error for r in failed)
    shown = (await led.reads.progress("b")).sinks["qdrant"]
    assert shown.failed == 2 and shown.last_error and "dimension 8" in shown.last_error
    assert await drain(led) == 0  # a permanent error is not retried


async def test_remove_chunks_removes_the_points_of_those_documents(
    led: Ledger, sqlite_url: str, tmp_path: Path, stores: Path, server: EmbeddingServer
) -> None:
    """What folder sync does for a source that disappeared: ``remove_chunks`` in its own
    transaction; the sinks drop that source's points and keep the others."""
    from ledger.index import chunks as index

    corpus = make_corpus(tmp_path / "docs", per_topic=1)
    url = sync_url_of(sqlite_url)
    await run_batch(led, BatchSpec(id="sync", options=options(server, *KINDS)), corpus)
    await drain(led)
    gone = sql(url, "SELECT id FROM documents WHERE source = :s", s=str(corpus[2]))[0][0]
    async with led.runner.transaction() as conn:
        removed, vectors = await index.remove_chunks(conn, [gone])
    assert removed > 0 and vectors == removed
    await drain(led)
    for kind in KINDS:
        assert assert_mirrored(kind, stores, url) > 0
        held = stored_points(kind, stores)
        assert gone not in {p["document_id"] for _, p in held.values()}
        assert len({p["document_id"] for _, p in held.values()}) == len(corpus) - 1
