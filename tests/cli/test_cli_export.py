"""``ledger export`` in a subprocess, on SQLite and PostgreSQL: every chunk once with its
citation fields (PDF pages among them), the same rows in JSON Lines, on stdout and in
Parquet, and a failed export leaves no file behind."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec
from tests.cli.conftest import Cli
from tests.conftest import sql
from tests.ingest.fixtures import make_pdf
from tests.pipeline.support import pipeline_settings, run_batch, sync_url_of

FIELDS = {
    "chunk_id", "document_id", "batch_id", "ordinal", "text", "page", "char_start",
    "char_end", "source_name", "document_sha256", "text_sha256", "vectors",
}  # fmt: skip
PAGES = [
    "Lighthouse keepers logged every passing ship. " * 30,
    "The harbour master kept the tide tables. " * 30,
    "Beacons were lit at dusk along the coast. " * 30,
]


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def parquet_rows(path: Path) -> list[dict[str, Any]]:
    rows = pq.read_table(path).to_pylist()
    for row in rows:  # a Parquet map reads back as (key, value) pairs
        if row["vectors"] is not None:
            row["vectors"] = dict(row["vectors"])
    return rows


@pytest.fixture
async def exported(db_url: str, tmp_path: Path) -> tuple[Cli, str]:
    """Two processed batches: 'mixed' (a 3-page PDF and two text files), then 'notes'."""
    docs = tmp_path / "docs"
    docs.mkdir()
    pdf = make_pdf(docs / "manual.pdf", PAGES)
    texts = []
    for i in range(2):
        path = docs / f"note{i}.txt"
        path.write_text(f"Note {i} about the keeper. " * 200, encoding="utf-8")
        texts.append(path)
    other = tmp_path / "other.txt"
    other.write_text("A second batch about anchors.\n", encoding="utf-8")
    led = await Ledger.open(pipeline_settings(db_url, tmp_path / "home"))
    try:
        await run_batch(led, BatchSpec(id="mixed"), [pdf, *texts])
        await run_batch(led, BatchSpec(id="notes"), [other])
    finally:
        await led.close()
    cli = Cli(tmp_path / "home")
    cli.env["LEDGER_DATABASE_URL"] = db_url
    return cli, sync_url_of(db_url)


def expected_chunks(url: str, batch_id: str) -> list[Any]:
    return sql(
        url,
        "SELECT c.id, c.document_id, c.ordinal, c.text, c.page, c.char_start, c.char_end, "
        "d.source, d.source_sha256 FROM chunks c JOIN documents d ON d.id = c.document_id "
        "WHERE c.batch_id = :b ORDER BY c.id",
        b=batch_id,
    )


async def test_export_round_trips_every_chunk_with_its_citation(
    exported: tuple[Cli, str], tmp_path: Path
) -> None:
    cli, url = exported
    out = tmp_path / "mixed.jsonl"
    result = cli("export", "mixed", "-o", str(out))
    assert result.code == 0, result.stderr
    expected = expected_chunks(url, "mixed")
    assert f"Exported {len(expected)} chunks of 1 batch" in result.stderr
    rows = jsonl(out.read_text(encoding="utf-8"))
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes a new file
    assert [r["chunk_id"] for r in rows] == [e.id for e in expected]  # each once, in order
    for row, e in zip(rows, expected, strict=True):
        assert set(row) == FIELDS
        assert (row["batch_id"], row["document_id"], row["ordinal"], row["text"]) == (
            "mixed", e.document_id, e.ordinal, e.text,
        )  # fmt: skip
        assert (row["page"], row["char_start"], row["char_end"]) == (
            e.page, e.char_start, e.char_end,
        )  # fmt: skip
        assert row["source_name"] == e.source
        assert row["document_sha256"] == e.source_sha256 is not None
        assert row["text_sha256"] == hashlib.sha256(row["text"].encode()).hexdigest()
        assert row["vectors"] is None
    pdf_pages = {r["page"] for r in rows if r["source_name"].endswith("manual.pdf")}
    assert pdf_pages == {1, 2, 3}
    assert {r["page"] for r in rows if r["source_name"].endswith(".txt")} == {None}

    # The same bytes on stdout.
    piped = cli("export", "mixed", "-o", "-")
    assert piped.code == 0, piped.stderr
    assert piped.stdout == out.read_text(encoding="utf-8")

    # Parquet reads back as the same rows.
    table = tmp_path / "mixed.parquet"
    result = cli("export", "mixed", "--format", "parquet", "-o", str(table))
    assert result.code == 0, result.stderr
    assert parquet_rows(table) == rows

    # --all: every batch, oldest first.
    result = cli("export", "--all", "-o", str(tmp_path / "all.jsonl"))
    assert result.code == 0, result.stderr
    every = jsonl((tmp_path / "all.jsonl").read_text(encoding="utf-8"))
    assert every[: len(rows)] == rows
    notes = expected_chunks(url, "notes")
    assert [r["chunk_id"] for r in every[len(rows) :]] == [e.id for e in notes]
    assert {r["batch_id"] for r in every[len(rows) :]} == {"notes"}


async def test_a_failed_export_leaves_no_file(exported: tuple[Cli, str], tmp_path: Path) -> None:
    cli, _ = exported
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    fresh = out_dir / "fresh.jsonl"
    # 'mixed' is written out, then 'nope' fails: nothing may be left.
    for fmt in ("jsonl", "parquet"):
        result = cli("export", "mixed", "nope", "-f", fmt, "-o", str(fresh))
        assert result.code == 1
        assert "no batch 'nope'" in result.stderr
        assert list(out_dir.iterdir()) == []
    # An older file of that name stays as it was.
    older = out_dir / "older.jsonl"
    older.write_text("old\n", encoding="utf-8")
    result = cli("export", "mixed", "nope", "-o", str(older))
    assert result.code == 1
    assert older.read_text(encoding="utf-8") == "old\n"
    assert list(out_dir.iterdir()) == [older]


async def test_export_usage_errors(exported: tuple[Cli, str], tmp_path: Path) -> None:
    cli, _ = exported
    out = tmp_path / "x.jsonl"
    for args in (
        ("export", "-o", str(out)),  # no batch
        ("export", "mixed", "--all", "-o", str(out)),  # both
        ("export", "mixed", "--format", "csv", "-o", str(out)),
        ("export", "mixed", "--model", "m", "-o", str(out)),  # --model without --vectors
        ("export", "mixed", "-o", str(tmp_path / "missing" / "x.jsonl")),
    ):
        result = cli(*args)
        assert result.code == 2, (args, result.stderr)
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert not out.exists()

    # Without pyarrow, Parquet is a one-line error naming the extra.
    blocker = tmp_path / "blocker"
    (blocker / "pyarrow").mkdir(parents=True)
    (blocker / "pyarrow" / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {"PYTHONPATH": f"{blocker}:{cli.env['PYTHONPATH']}"}
    result = cli("export", "mixed", "-f", "parquet", "-o", str(out), env=env)
    assert result.code == 2
    assert result.stderr.strip() == (
        "error: Parquet export needs pyarrow: pip install 'ledger[parquet]'"
    )
    assert not out.exists()
    assert cli("export", "mixed", "-o", str(out), env=env).code == 0  # JSON Lines needs none


def test_ingested_folders_are_cited_relative_to_the_folder_given(cli: Cli, tmp_path: Path) -> None:
    docs = tmp_path / "handbook"
    (docs / "guide").mkdir(parents=True)
    (docs / "guide" / "intro.md").write_text("# Intro\n\nThe axolotl chapter.\n")
    (docs / "faq.txt").write_text("Questions about the axolotl.\n")
    ingested = cli("ingest", str(docs), "--batch", "hb")
    assert ingested.code == 0, ingested.stderr
    found = cli("search", "axolotl", "--json")
    assert found.code == 0, found.stderr
    hits = found.json()
    assert {h["source_name"] for h in hits} == {"handbook/guide/intro.md", "handbook/faq.txt"}
    assert {h["source"] for h in hits} == {str(docs / "guide" / "intro.md"), str(docs / "faq.txt")}
    exported = cli("export", "hb", "-o", "-")
    assert exported.code == 0, exported.stderr
    names = {row["source_name"] for row in jsonl(exported.stdout)}
    assert names == {"handbook/guide/intro.md", "handbook/faq.txt"}
