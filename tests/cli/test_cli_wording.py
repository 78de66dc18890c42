"""Counted nouns in the command's output agree with their count ("1 attempt", "2 attempts")."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli


def test_one_document_one_attempt_reads_in_the_singular(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha\n")
    args = ["-p", "sleep", "-o", "seconds=0", "-o", "failure_rate=1", "--max-attempts", "1"]
    result = cli("ingest", str(folder), *args)
    assert result.code == 1, result.stderr
    assert "1 document (" in result.stdout
    assert "This run processed 1 document in" in result.stdout
    assert "1 documents" not in result.stdout
    message = cli.scalar("SELECT error_message FROM documents")
    assert message.endswith("(gave up after 1 attempt)"), message


def test_several_documents_read_in_the_plural(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("a.txt", "b.txt"):
        (folder / name).write_text(name)
    args = ["-p", "sleep", "-o", "seconds=0", "-o", "failure_rate=1", "--max-attempts", "2"]
    result = cli("ingest", str(folder), *args)
    assert result.code == 1, result.stderr
    assert "This run processed 2 documents in" in result.stdout
    messages = [row[0] for row in cli.sql("SELECT error_message FROM documents")]
    assert all(m.endswith("(gave up after 2 attempts)") for m in messages), messages
