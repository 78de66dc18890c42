"""The README's two commands are the contract with a new user; CI runs the second."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_lines() -> list[str]:
    return (ROOT / "README.md").read_text(encoding="utf-8").splitlines()


def readme_commands() -> list[str]:
    lines = readme_lines()
    start = lines.index("```sh")
    end = lines.index("```", start + 1)
    return lines[start + 1 : end]


def test_readme_opens_with_title_pitch_then_commands() -> None:
    lines = readme_lines()
    assert lines[0] == "# ledger"
    prose = [line for line in lines[1 : lines.index("```sh")] if line.strip()]
    assert len(prose) == 1, "one line of pitch between the title and the commands"


def test_readme_starts_with_exactly_two_commands() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    assert "ledger ingest" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert readme_commands()[1] in ci
