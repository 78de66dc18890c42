"""`ledger ingest` of a folder holding an archive, through the real command line: a member
that fails is named by its archive and member path, in the run's summary and in
`ledger failures`, never by the file it was extracted to."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli
from tests.ingest import container_fixtures as cf


def test_a_failed_member_is_named_by_its_archive(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    cf.make_zip(
        folder / "box.zip",
        {"good.txt": b"a fine member\n", "reports/broken.pdf": b"%PDF-1.4\nnot a real pdf"},
    )
    result = cli("ingest", str(folder), env={"COLUMNS": "400"})
    assert result.code == 1, result.stderr  # the broken member failed
    assert "docs/box.zip!/reports/broken.pdf" in result.stdout
    batch_id = cli.scalar("SELECT id FROM batches")
    rows = cli.sql("SELECT member_path, status FROM documents WHERE parent_id IS NOT NULL")
    assert sorted(rows) == [("good.txt", "done"), ("reports/broken.pdf", "failed")]

    human = cli("failures", batch_id, env={"COLUMNS": "400"})  # one line per document
    assert human.code == 0, human.stderr
    assert "box.zip!/reports/broken.pdf" in human.stdout
    assert "/members/" not in human.stdout  # the extracted file's path stays internal
    listing = cli("failures", batch_id, "--json")
    (group,) = listing.json()["groups"]
    (doc,) = group["documents"]
    assert doc["member_path"] == "reports/broken.pdf" and doc["parent_id"] is not None
