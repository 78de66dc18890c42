"""``ledger ingest --glob``: `**/` matches at any depth, the folder itself included, and a
pattern that matches nothing is a usage error that says how the pattern was matched."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli
from tests.ingest.not_documents import make_tree as _tree


def _sources(cli: Cli, root: Path) -> list[str]:
    return sorted(
        str(Path(row[0]).relative_to(root.resolve()))
        for row in cli.sql("SELECT source FROM documents")
    )


def test_globstar_matches_at_any_depth_including_the_folder_itself(
    cli: Cli, tmp_path: Path
) -> None:
    root = _tree(tmp_path / "docs")
    result = cli("ingest", str(root), "-p", "noop", "--glob", "**/*.pdf", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["batch"]["total"] == 3
    assert _sources(cli, root) == ["a/b/two.pdf", "a/one.pdf", "top.pdf"]


def test_globstar_inside_a_pattern_takes_zero_or_more_folders(cli: Cli, tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    result = cli("ingest", str(root), "-p", "noop", "--glob", "a/**/*.pdf", "--json")
    assert result.code == 0, result.stderr
    assert _sources(cli, root) == ["a/b/two.pdf", "a/one.pdf"]


def test_a_glob_matching_nothing_is_a_usage_error_with_a_hint(cli: Cli, tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    for command in (["--json"], ["--dry-run"]):
        result = cli("ingest", str(root), "-p", "noop", "--glob", "docs/*.pdf", *command)
        assert result.code == 2, result.stderr
        message = " ".join(result.stderr.split())  # the console may wrap the line
        assert "no regular files matching 'docs/*.pdf'" in message
        assert "5 files did not match" in message
        assert "relative to the folder given" in message
        assert "'**/'" in message
    assert cli.scalar("SELECT count(*) FROM batches") == 0
