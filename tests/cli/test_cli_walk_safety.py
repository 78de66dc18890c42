"""What ``ledger ingest`` leaves out of a folder, and what it refuses: names that are not
UTF-8, symbolic links leading outside the folder, and commands that find nothing at all."""

from __future__ import annotations

import os
from pathlib import Path

from ledger.cli.walk import WalkStats, walk
from tests.cli.conftest import Cli

BAD_NAME = b"bad\xff\xfe.txt"


def _folder_with_bad_name(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "good.txt").write_text("fine\n")
    with open(os.path.join(os.fsencode(root), BAD_NAME), "wb") as handle:
        handle.write(b"content\n")
    return root


def test_names_that_are_not_utf8_are_skipped_with_a_count(cli: Cli, tmp_path: Path) -> None:
    docs = _folder_with_bad_name(tmp_path / "docs")
    result = cli("ingest", str(docs), "-p", "noop", "--json")
    assert result.code == 0, result.stderr
    summary = result.json()
    assert summary["skipped_unreadable_names"] == 1
    assert summary["unreadable_name_examples"] == [f"{docs}/bad\\xff\\xfe.txt"]
    assert "not valid UTF-8" in result.stderr
    assert "bad\\xff\\xfe.txt" in result.stderr
    # Nothing undecodable reached the database: every row reads back as text.
    assert cli.sql("SELECT source, status FROM documents") == [(str(docs / "good.txt"), "done")]

    # Running it again resumes quietly (no traceback), and a worker has nothing to choke on.
    again = cli("ingest", str(docs), "-p", "noop")
    assert again.code == 0, again.stderr
    assert "Traceback" not in again.stderr
    burst = cli("worker", "--burst")
    assert burst.code == 0, burst.stderr


def test_a_link_leading_outside_the_folder_is_skipped_unless_asked(
    cli: Cli, tmp_path: Path
) -> None:
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("not for this batch\n")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "inside.txt").write_text("in\n")
    os.symlink(docs / "inside.txt", docs / "alias.txt")  # stays inside: still taken
    os.symlink(secret, docs / "leak.txt")

    result = cli("ingest", str(docs), "-p", "noop", "--json")
    assert result.code == 0, result.stderr
    summary = result.json()
    assert summary["skipped_outside_links"] == 1
    assert summary["outside_link_examples"] == [f"{docs / 'leak.txt'} -> {secret}"]
    assert "--follow-symlinks" in result.stderr
    sources = {row[0] for row in cli.sql("SELECT source FROM documents")}
    assert sources == {str(docs / "inside.txt"), str(docs / "alias.txt")}

    followed = cli("ingest", str(docs), "-p", "noop", "--json", "--follow-symlinks")
    assert followed.code == 0, followed.stderr
    assert followed.json()["skipped_outside_links"] == 0
    assert cli.scalar("SELECT count(*) FROM documents WHERE source = ?", str(docs / "leak.txt"))


def test_nothing_to_ingest_is_an_error_and_makes_no_batch(cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("a\n")

    for args, detail in (
        ([str(empty)], f"no regular files in {empty}"),
        ([str(fifo)], f"no regular files in {fifo}"),
        ([str(docs), "--glob", "*.pdf"], f"no regular files matching '*.pdf' in {docs}"),
        ([str(docs), "--glob", "*.pdf", "--dry-run"], "no regular files matching '*.pdf'"),
    ):
        result = cli("ingest", *args, "-p", "noop")
        assert result.code == 2, (args, result.stdout, result.stderr)
        assert "nothing to ingest" in result.stderr and detail in result.stderr
        assert "Traceback" not in result.stderr
    assert cli.scalar("SELECT count(*) FROM batches") == 0


def test_walk_counts_what_it_leaves_out(tmp_path: Path) -> None:
    docs = _folder_with_bad_name(tmp_path / "docs")
    bad_folder = os.path.join(os.fsencode(docs), b"sub\xff")
    os.mkdir(bad_folder)
    with open(os.path.join(bad_folder, b"inner.txt"), "wb") as handle:
        handle.write(b"x")
    os.symlink(tmp_path, docs / "up")  # a link to a folder: never followed
    stats = WalkStats()
    found = [s.source for s in walk([docs], stats=stats)]
    assert found == [str(docs / "good.txt")]
    assert stats.unreadable_names == 2  # the file and the folder (its content unseen)
    assert all(example.isprintable() for example in stats.unreadable_name_examples)


def test_read_commands_on_a_missing_database_create_nothing(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "folder"
    url = f"sqlite+aiosqlite:///{missing / 'ledger.db'}"
    for args in (
        ["batches"],
        ["status", "some-batch"],
        ["failures", "some-batch"],
        ["retry", "some-batch"],
        ["pause", "some-batch"],
        ["search", "anything"],
        ["keys", "list"],
        ["db", "downgrade", "base", "--yes"],
    ):
        result = cli("--database-url", url, *args)
        assert result.code == 2, (args, result.stderr)
        assert f"no ledger database at {missing / 'ledger.db'}" in result.stderr
        assert "Traceback" not in result.stderr
    current = cli("--database-url", url, "db", "current", "--json")
    assert current.code == 1 and current.json()["up_to_date"] is False
    assert not (tmp_path / "no").exists()
    assert not cli.home.exists()
