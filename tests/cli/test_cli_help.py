"""Help text a person can read: metavars rather than Python types, choices listed, one
meaning per short flag, and the search filter the API also has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.conftest import Cli

COMMANDS = [
    ["ingest"],
    ["batches"],
    ["batches", "set"],
    ["status"],
    ["failures"],
    ["retry"],
    ["pause"],
    ["resume"],
    ["cancel"],
    ["delete"],
    ["search"],
    ["worker"],
    ["serve"],
    ["keys", "create"],
    ["db", "upgrade"],
    ["db", "downgrade"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_shows_no_python_types(cli: Cli, command: list[str]) -> None:
    result = cli(*command, "--help", env={"COLUMNS": "100"})
    assert result.code == 0, result.stderr
    assert not re.search(r"<(bool|str|int|float|list\[\w+\]|Path)\b", result.stdout), result.stdout
    # Arguments are named in capitals, in the usage line as in the list.
    usage = result.stdout.splitlines()[0]
    for name in re.findall(r"[{\[]([A-Za-z]+)[}\]]", usage):
        assert name == name.upper() or name == "OPTIONS", usage


def test_search_help_lists_the_modes_and_ingest_path(cli: Cli) -> None:
    search = cli("search", "--help", env={"COLUMNS": "100"}).stdout
    assert "--mode text|vector|hybrid" in search
    assert "{QUERY}" in search
    ingest = cli("ingest", "--help", env={"COLUMNS": "100"}).stdout
    assert "{PATH}..." in ingest
    assert "<list[Path]>" not in ingest


def test_short_n_means_limit_wherever_it_exists(cli: Cli) -> None:
    for command in ("batches", "failures"):
        assert re.search(r"-n, --limit\b", cli(command, "--help").stdout)
    ingest = cli("ingest", "--help").stdout
    assert "--dry-run" in ingest and not re.search(r"-n, --dry-run", ingest)


def test_search_filters_by_batch(cli: Cli, tmp_path: Path) -> None:
    for name in ("north", "south"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / f"{name}.txt").write_text(f"The lighthouse stands in the {name}.\n", "utf-8")
        result = cli("ingest", str(folder), "-b", name, "--json")
        assert result.code == 0, result.stderr
    everywhere = cli("search", "lighthouse", "--json")
    assert everywhere.code == 0, everywhere.stderr
    assert sorted(Path(h["source"]).name for h in everywhere.json()) == ["north.txt", "south.txt"]
    only = cli("search", "lighthouse", "--batch", "south", "--json")
    assert only.code == 0, only.stderr
    assert [Path(h["source"]).name for h in only.json()] == ["south.txt"]
