"""``ledger ingest --dry-run`` decides new, changed and unchanged exactly as the run after it
does (it is the same submission, rolled back), and writes nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.cli.conftest import Cli

TABLES = ("batches", "documents", "events")


def _folder(root: Path) -> Path:
    for i in range(4):
        folder = root / f"part{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"doc{i}.txt").write_text(f"document {i}: some words to index\n")
    return root


def _rows(cli: Cli) -> dict[str, int]:
    return {table: cli.scalar(f"SELECT count(*) FROM {table}") for table in TABLES}


def _change(path: Path) -> None:
    before = path.stat()
    path.write_text(path.read_text() + "a changed line\n")
    # A later modification time even where the clock is coarse: the change must be seen.
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))


def _dry_run(cli: Cli, *args: str) -> dict[str, Any]:
    before = _rows(cli)
    result = cli("ingest", *args, "--dry-run", "--json")
    assert result.code == 0, result.stderr
    assert _rows(cli) == before  # a dry run leaves the database as it was
    data: dict[str, Any] = result.json()
    return data


def test_dry_run_counts_match_what_the_run_then_does(cli: Cli, tmp_path: Path) -> None:
    root = _folder(tmp_path / "docs")
    first = cli("ingest", str(root), "--json")
    assert first.code == 0, first.stderr
    _change(root / "part0" / "doc0.txt")
    (root / "added.txt").write_text("a new document\n")

    plan = _dry_run(cli, str(root))
    assert (plan["new"], plan["changed"], plan["unchanged"]) == (1, 1, 3)
    assert (plan["batch_exists"], plan["to_process"]) == (True, 2)

    run = cli("ingest", str(root), "--json")
    assert run.code == 0, run.stderr
    done = run.json()
    assert done["added"] - done["skipped_unchanged"] == plan["new"]
    assert done["requeued"] == plan["changed"]
    assert done["processed"] == plan["to_process"]
    assert done["known"] - done["requeued"] + done["skipped_unchanged"] == plan["unchanged"]


def test_dry_run_of_a_new_batch_sees_the_files_already_indexed(cli: Cli, tmp_path: Path) -> None:
    root = _folder(tmp_path / "docs")
    assert cli("ingest", str(root), "--json").code == 0
    _change(root / "part1" / "doc1.txt")

    # Another glob makes another batch: only the changed file is work for it.
    plan = _dry_run(cli, str(root), "--glob", "**/*.txt")
    assert (plan["batch_exists"], plan["new"], plan["changed"], plan["unchanged"]) == (
        False,
        1,
        0,
        3,
    )
    assert plan["skipped_unchanged"] == 3

    human = cli("ingest", str(root), "--glob", "**/*.txt", "--dry-run")
    assert human.code == 0, human.stderr
    assert "Plan for new batch" in human.stdout
    assert "3 already indexed, skipped at submit" in " ".join(human.stdout.split())
    assert "needs the ingest pipeline" not in human.stdout

    run = cli("ingest", str(root), "--glob", "**/*.txt", "--json").json()
    assert (run["added"], run["skipped_unchanged"], run["processed"]) == (4, 3, 1)
    assert run["batch"]["id"] == plan["batch_id"]
