"""``ledger batches set`` changes a batch's priority, attempt budget and name, through the
same core call as ``PATCH /api/v1/batches/{id}``; mistakes are one line with exit code 2."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli


def test_set_changes_priority_attempts_and_name(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha\n")
    assert cli("ingest", str(folder), "-b", "b1", "-p", "noop").code == 0

    result = cli("batches", "set", "b1", "--priority", "7", "--max-attempts", "4", "--json")
    assert result.code == 0, result.stderr
    shown = result.json()
    assert (shown["priority"], shown["max_attempts"], shown["name"]) == (7, 4, str(folder))
    assert cli.sql("SELECT priority, max_attempts FROM batches WHERE id = 'b1'") == [(7, 4)]
    events = cli.sql("SELECT data FROM events WHERE batch_id = 'b1' AND kind = 'batch_updated'")
    assert len(events) == 1

    human = cli("batches", "set", "b1", "--name", "Quarterly reports")
    assert human.code == 0, human.stderr
    assert "Quarterly reports" in human.stdout and "priority 7" in human.stdout
    assert cli.scalar("SELECT name FROM batches WHERE id = 'b1'") == "Quarterly reports"
    # The listing is still `ledger batches`, with its options.
    listed = cli("batches", "--json")
    assert listed.code == 0, listed.stderr
    assert [(b["id"], b["priority"]) for b in listed.json()] == [("b1", 7)]


def test_set_refuses_mistakes_in_one_line(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha\n")
    assert cli("ingest", str(folder), "-b", "b1", "-p", "noop").code == 0

    nothing = cli("batches", "set", "b1")
    assert nothing.code == 2
    assert "nothing to change" in nothing.stderr

    out_of_range = cli("batches", "set", "b1", "--max-attempts", "0")
    assert out_of_range.code == 2
    assert "max_attempts must be from 1" in out_of_range.stderr

    missing = cli("batches", "set", "nope", "--priority", "1")
    assert missing.code == 1
    assert "no batch 'nope'" in missing.stderr

    for result in (nothing, out_of_range, missing):
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert cli.sql("SELECT priority, max_attempts FROM batches WHERE id = 'b1'") == [(0, 3)]
