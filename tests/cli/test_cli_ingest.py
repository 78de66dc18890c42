"""``ledger ingest`` end to end: real subprocesses, checked against the database with SQL."""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli.conftest import Cli, make_corpus

ANSI = re.compile(r"\x1b\[")


def counts(cli: Cli, batch_id: str) -> dict[str, int]:
    return dict(
        cli.sql("SELECT status, count(*) FROM documents WHERE batch_id = ? GROUP BY 1", batch_id)
    )


def test_ingest_processes_every_file_once(cli: Cli, corpus: Path) -> None:
    (corpus / ".hidden").mkdir()
    (corpus / ".hidden" / "secret.txt").write_text("left out")
    (corpus / ".dotfile").write_text("left out")

    result = cli("ingest", str(corpus), "-p", "noop", "--json")
    assert result.code == 0, result.stderr
    summary = result.json()
    batch_id = summary["batch"]["id"]
    assert summary["created"] is True
    assert summary["added"] == 30
    assert summary["exit_code"] == 0
    assert summary["batch"]["counts"]["done"] == 30
    assert counts(cli, batch_id) == {"done": 30}
    assert cli.scalar("SELECT count(*) FROM documents WHERE source LIKE '%.hidden%'") == 0
    assert cli.scalar("SELECT count(*) FROM documents WHERE source LIKE '%.dotfile'") == 0
    # Sizes and modification times travel with each source.
    assert cli.scalar("SELECT count(*) FROM documents WHERE source_size IS NULL") == 0
    assert cli.scalar("SELECT count(*) FROM documents WHERE source_mtime_ns IS NULL") == 0
    # One attempt per document, and it succeeded.
    assert cli.sql("SELECT outcome, count(*) FROM attempts GROUP BY 1") == [("done", 30)]

    again = cli("ingest", str(corpus), "-p", "noop", "--json")
    assert again.code == 0, again.stderr
    second = again.json()
    assert second["batch"]["id"] == batch_id  # the same command names the same batch
    assert second["created"] is False
    assert (second["added"], second["known"], second["processed"]) == (0, 30, 0)
    assert cli.scalar("SELECT count(*) FROM attempts") == 30
    assert cli.scalar("SELECT count(*) FROM batches") == 1


def test_rerun_adds_only_new_files(cli: Cli, corpus: Path) -> None:
    first = cli("ingest", str(corpus), "-p", "noop", "--json").json()
    (corpus / "part0" / "late.txt").write_text("arrived later")
    second = cli("ingest", str(corpus), "-p", "noop", "--json").json()
    assert second["batch"]["id"] == first["batch"]["id"]
    assert (second["added"], second["known"], second["processed"]) == (1, 30, 1)
    assert cli.sql("SELECT outcome, count(*) FROM attempts GROUP BY 1") == [("done", 31)]


def test_different_options_make_a_different_batch(cli: Cli, corpus: Path) -> None:
    a = cli("ingest", str(corpus), "-p", "noop", "--json").json()["batch"]["id"]
    b = cli("ingest", str(corpus), "-p", "noop", "-g", "*.txt", "--json").json()["batch"]["id"]
    c = cli("ingest", str(corpus), "-p", "sleep", "-o", "seconds=0", "--json").json()
    assert len({a, b, c["batch"]["id"]}) == 3
    assert c["batch"]["options"] == {"seconds": 0}


def test_glob_selects_files_at_any_depth(cli: Cli, tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "mixed", 12, suffix=".txt")
    make_corpus(root, 5, suffix=".md")
    result = cli("ingest", str(root), "-p", "noop", "-g", "*.md", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["batch"]["total"] == 5
    assert cli.scalar("SELECT count(*) FROM documents WHERE source NOT LIKE '%.md'") == 0


def test_explicit_batch_id_and_single_files(cli: Cli, corpus: Path) -> None:
    files = sorted(corpus.rglob("*.txt"))[:3]
    result = cli("ingest", *map(str, files), "--batch", "three", "-p", "noop", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["batch"]["id"] == "three"
    assert sorted(r[0] for r in cli.sql("SELECT source FROM documents")) == sorted(
        str(f.resolve()) for f in files
    )


def test_failures_exit_1_and_are_listed(cli: Cli, corpus: Path) -> None:
    args = ["ingest", str(corpus), "-p", "sleep", "-o", "seconds=0", "-o", "permanent_rate=0.5"]
    args += ["-o", "seed=7", "-c", "1"]
    result = cli(*args)
    assert result.code == 1, result.stderr
    batch_id = cli.scalar("SELECT id FROM batches")
    failed = counts(cli, batch_id)["failed"]
    assert 0 < failed < 30
    assert "First failures" in result.stdout
    assert f"ledger failures {batch_id}" in result.stdout

    listing = cli("failures", batch_id, "--json", "--limit", "0")
    assert listing.code == 0, listing.stderr
    data = listing.json()
    assert data["failed"] == failed
    assert [g["code"] for g in data["groups"]] == ["sleep_permanent"]
    docs = data["groups"][0]["documents"]
    assert sorted(d["id"] for d in docs) == sorted(
        r[0] for r in cli.sql("SELECT id FROM documents WHERE status = 'failed'")
    )
    assert all(d["error_message"].startswith("simulated permanent failure") for d in docs)

    human = cli("failures", batch_id, "--limit", "2")
    assert human.code == 0
    assert "sleep_permanent" in human.stdout
    assert f"… and {failed - 2} more" in human.stdout

    retried = cli("retry", batch_id, "--code", "sleep_permanent", "--json")
    assert retried.code == 0, retried.stderr
    assert retried.json()["retried"] == failed
    assert counts(cli, batch_id).get("failed", 0) == 0
    assert counts(cli, batch_id)["pending"] == failed


def test_retryable_failures_are_retried_until_done(cli: Cli, corpus: Path) -> None:
    args = ["ingest", str(corpus), "-p", "sleep", "-o", "seconds=0", "-o", "failure_rate=0.3"]
    result = cli(*args, "-o", "seed=3", "--max-attempts", "20", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["batch"]["counts"]["done"] == 30
    assert cli.scalar("SELECT count(*) FROM attempts WHERE outcome = 'retry'") > 0
    assert cli.sql(
        "SELECT count(*) FROM (SELECT document_id FROM attempts WHERE outcome = 'done' "
        "GROUP BY document_id HAVING count(*) = 1)"
    ) == [(30,)]


def test_without_terminal_progress_is_plain_lines(cli: Cli, corpus: Path) -> None:
    args = ["ingest", str(corpus), "-p", "sleep", "-o", "seconds=0.05", "-c", "2"]
    result = cli(*args, "--progress-interval", "0.2")
    assert result.code == 0, result.stderr
    assert not ANSI.search(result.stdout + result.stderr)
    lines = result.stdout.splitlines()
    progress = [line for line in lines if line.startswith("progress ")]
    assert len(progress) >= 3, result.stdout  # ~0.75 s of work, a line every 0.2 s
    assert progress[-1].startswith("progress 30/30 (100%): 30 done, 0 failed, 0 skipped")
    assert lines[0].startswith("new batch ")
    assert any(line.startswith("Done: batch ") for line in lines)


def test_dry_run_plans_and_changes_nothing(cli: Cli, corpus: Path) -> None:
    plan = cli("ingest", str(corpus), "-p", "noop", "--dry-run", "--json")
    assert plan.code == 0, plan.stderr
    data = plan.json()
    assert (data["batch_exists"], data["new"], data["known"]) == (False, 30, 0)
    assert (data["changed"], data["unchanged"], data["to_process"]) == (0, 0, 30)
    assert cli.scalar("SELECT count(*) FROM batches") == 0

    assert cli("ingest", str(corpus), "-p", "noop").code == 0
    for i in range(4):
        (corpus / f"new{i}.txt").write_text("new")
    data = cli("ingest", str(corpus), "-p", "noop", "--dry-run", "--json").json()
    assert (data["batch_exists"], data["new"], data["known"]) == (True, 4, 30)
    assert (data["changed"], data["unchanged"], data["to_process"]) == (0, 30, 4)
    assert cli.scalar("SELECT count(*) FROM documents") == 30

    human = cli("ingest", str(corpus), "-p", "noop", "--dry-run")
    assert human.code == 0
    assert "Plan for existing batch" in human.stdout
    assert "Dry run: nothing was submitted." in human.stdout


def test_new_batch_over_indexed_files_skips_them_at_submit(cli: Cli, corpus: Path) -> None:
    first = cli("ingest", str(corpus), "--batch", "first", "--json")
    assert first.code == 0, first.stderr
    assert first.json()["batch"]["counts"]["done"] == 30
    (corpus / "part0" / "late.txt").write_text("A late file about the okapi.")

    again = cli("ingest", str(corpus), "--batch", "again", "--json")
    assert again.code == 0, again.stderr
    data = again.json()
    assert (data["added"], data["skipped_unchanged"], data["processed"]) == (31, 30, 1)
    assert counts(cli, "again") == {"done": 1, "skipped": 30}
    # Only the new file was attempted; the indexed ones point at the documents holding them.
    attempted = cli.sql("SELECT d.source FROM attempts a JOIN documents d ON d.id = a.document_id"
                        " WHERE a.batch_id = 'again'")  # fmt: skip
    assert [Path(s).name for (s,) in attempted] == ["late.txt"]
    orphans = cli.scalar(
        "SELECT count(*) FROM documents d WHERE d.batch_id = 'again' AND d.status = 'skipped'"
        " AND NOT EXISTS (SELECT 1 FROM documents h WHERE h.batch_id = 'first' AND h.status ="
        " 'done' AND h.source = d.source AND json_extract(d.result, '$.duplicate_of') = h.id)"
    )
    assert orphans == 0

    human = cli("ingest", str(corpus), "--batch", "third")
    assert human.code == 0, human.stderr
    assert "31 of the new already indexed, unchanged: skipped" in human.stdout
