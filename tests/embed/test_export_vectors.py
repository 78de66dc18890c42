"""``ledger export --vectors`` on SQLite and PostgreSQL, after a real embedding stage (the
test embedding server): every chunk comes with the vector stored for it, in JSON Lines and
in Parquet, and ``--model`` picks one model's vectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.index.vectors import from_bytes
from ledger.model import BatchSpec
from tests.cli.conftest import Cli
from tests.cli.test_cli_export import parquet_rows
from tests.conftest import sql
from tests.embed.server import MODEL, EmbeddingServer
from tests.embed.support import embedder_options, make_corpus
from tests.pipeline.support import run_batch, sync_url_of


async def test_export_carries_each_chunks_stored_vector(
    led: Ledger, db_url: str, tmp_path: Path, server: EmbeddingServer
) -> None:
    corpus = make_corpus(tmp_path / "docs")
    await run_batch(led, BatchSpec(id="vec", options=embedder_options(server.base_url)), corpus)
    url = sync_url_of(db_url)
    stored = {
        r.chunk_id: from_bytes(r.vector).tolist()
        for r in sql(url, "SELECT chunk_id, vector FROM chunk_vectors WHERE model = :m", m=MODEL)
    }
    chunk_ids = [r.id for r in sql(url, "SELECT id FROM chunks ORDER BY id")]
    assert chunk_ids and sorted(stored) == chunk_ids  # the stage embedded every chunk

    cli = Cli(tmp_path / "home")
    cli.env["LEDGER_DATABASE_URL"] = db_url
    out = tmp_path / "vec.jsonl"
    result = cli("export", "vec", "--vectors", "-o", str(out))
    assert result.code == 0, result.stderr
    assert f"{len(chunk_ids)} with vectors" in result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["chunk_id"] for r in rows] == chunk_ids
    for row in rows:
        assert row["vectors"] == {MODEL: pytest.approx(stored[row["chunk_id"]])}

    table = tmp_path / "vec.parquet"
    result = cli("export", "vec", "--vectors", "-f", "parquet", "-o", str(table))
    assert result.code == 0, result.stderr
    assert parquet_rows(table) == rows  # float32 vectors survive both formats exactly

    # --model: only that model's vectors (none for another model).
    result = cli("export", "vec", "--vectors", "--model", "other", "-o", "-")
    assert result.code == 0, result.stderr
    assert {json.dumps(json.loads(line)["vectors"]) for line in result.stdout.splitlines()} == {
        "{}"
    }
