"""``batches --state`` takes every status the STATUS column shows, and control commands
refuse batches that are finished."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.cli.conftest import Cli


def listed(cli: Cli, state: str) -> list[str]:
    result = cli("batches", "--state", state, "--json")
    assert result.code == 0, result.stderr
    return sorted(b["id"] for b in result.json())


def test_every_status_filters_batches(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    (small / "a.txt").write_text("alpha\n")
    assert cli("ingest", str(small), "-b", "finished-one", "-p", "noop").code == 0

    # One slow document at a time, paused while the first runs: the rest stay pending.
    args = ["ingest", str(corpus), "-b", "held-one", "-p", "sleep", "-o", "seconds=2", "-c", "1"]
    proc = cli.start(*args)
    cli.wait_for("SELECT count(*) FROM documents WHERE status = 'running'", lambda n: n == 1)
    assert cli("pause", "held-one").code == 0
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    cli.wait_for("SELECT count(*) FROM documents WHERE status = 'running'", lambda n: n == 0)

    assert listed(cli, "complete") == ["finished-one"]
    assert listed(cli, "paused") == ["held-one"]
    assert listed(cli, "pending") == []
    assert listed(cli, "cancelled") == []
    # active means work left (pending or running): never a complete or paused batch.
    assert listed(cli, "active") == []

    assert cli("resume", "held-one").code == 0
    assert listed(cli, "pending") == ["held-one"]
    assert listed(cli, "running") == []
    assert listed(cli, "active") == ["held-one"]
    human = cli("batches", "--state", "pending")
    assert "held-one" in human.stdout and "finished-one" not in human.stdout

    assert cli("cancel", "held-one", "-y").code == 0
    assert listed(cli, "cancelled") == ["held-one"]
    assert listed(cli, "complete") == ["finished-one"]


def test_an_unknown_state_lists_the_choices(cli: Cli) -> None:
    result = cli("batches", "--state", "finished")
    assert result.code == 2
    assert "complete" in result.stderr
