"""Running the same ingest again says there is nothing to do, as the README promises."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli

ROOT = Path(__file__).resolve().parents[2]
UNCHANGED = "every file is unchanged and already finished"


def test_second_run_says_nothing_to_do(cli: Cli, corpus: Path) -> None:
    first = cli("ingest", str(corpus), "-p", "noop")
    assert first.code == 0, first.stderr
    assert "This run processed 30 documents in" in first.stdout
    second = cli("ingest", str(corpus), "-p", "noop")
    assert second.code == 0, second.stderr
    assert f"nothing to do: {UNCHANGED}" in second.stderr + second.stdout
    assert f"This run processed nothing: {UNCHANGED}." in second.stdout
    assert "/s" not in second.stderr + second.stdout  # no rate for a run that did nothing
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"This run processed nothing: {UNCHANGED}." in readme
    assert ". .venv/bin/activate" in readme


def test_a_changed_file_is_processed_on_the_second_run(cli: Cli, corpus: Path) -> None:
    assert cli("ingest", str(corpus), "-p", "noop").code == 0
    changed = next(corpus.rglob("*.txt"))
    changed.write_text("a new version, longer than before\n")
    second = cli("ingest", str(corpus), "-p", "noop")
    assert second.code == 0, second.stderr
    assert "nothing to do" not in second.stderr + second.stdout
    assert "This run processed 1 document in" in second.stdout
