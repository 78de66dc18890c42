"""``ledger ingest`` on a real docs folder: files that are not documents are skipped (exit 0,
a re-run does nothing), ``--all-types`` reads them, ``--include``/``--exclude`` select files
at any depth, and a batch whose failures are all permanent is not told to retry them."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli
from tests.ingest.not_documents import DOCUMENTS, NOT_DOCUMENTS, make_docs_folder
from tests.ingest.not_documents import make_tree as _tree


def _by_name(cli: Cli, root: Path, batch_id: str) -> dict[str, tuple[str, str | None]]:
    rows = cli.sql(
        "SELECT source, status, json_extract(result, '$.reason') FROM documents WHERE batch_id = ?",
        batch_id,
    )
    return {str(Path(s).relative_to(root.resolve())): (st, why) for s, st, why in rows}


def test_a_docs_folder_is_done_with_the_rest_skipped_and_the_rerun_does_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    root = tmp_path / "site"
    make_docs_folder(root)
    first = cli("ingest", str(root), "--json")
    assert first.code == 0, first.stderr
    batch_id = first.json()["batch"]["id"]
    found = _by_name(cli, root, batch_id)
    assert {name: found[name][0] for name in DOCUMENTS} == dict.fromkeys(DOCUMENTS, "done")
    assert {name: found[name] for name in NOT_DOCUMENTS} == {
        name: ("skipped", reason) for name, reason in NOT_DOCUMENTS.items()
    }
    again = cli("ingest", str(root))
    assert again.code == 0, again.stderr
    assert "This run processed nothing" in again.stdout
    assert "retry" not in again.stdout
    assert cli.scalar("SELECT count(*) FROM attempts") == len(DOCUMENTS) + len(NOT_DOCUMENTS)


def test_all_types_reads_the_script_in_a_batch_of_its_own(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "site"
    make_docs_folder(root)
    default = cli("ingest", str(root), "--include", "*.js", "--json")
    assert default.code == 0, default.stderr
    everything = cli("ingest", str(root), "--include", "*.js", "--all-types", "--json")
    assert everything.code == 0, everything.stderr
    first_id = default.json()["batch"]["id"]
    batch_id = everything.json()["batch"]["id"]
    assert batch_id != first_id
    assert _by_name(cli, root, first_id) == {
        "_static/searchindex.js": ("skipped", "excluded_type: JS web asset")
    }
    assert _by_name(cli, root, batch_id) == {"_static/searchindex.js": ("done", None)}
    kind = cli.scalar(
        "SELECT json_extract(result, '$.type') FROM documents WHERE batch_id = ?", batch_id
    )
    assert kind == "text"


def _sources(cli: Cli, root: Path, batch_id: str) -> list[str]:
    return sorted(_by_name(cli, root, batch_id))


def test_include_and_exclude_patterns_match_at_any_depth(cli: Cli, tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    pdfs = cli("ingest", str(root), "-p", "noop", "--include", "**/*.pdf", "--json")
    assert pdfs.code == 0, pdfs.stderr
    pdf_batch = pdfs.json()["batch"]["id"]
    assert _sources(cli, root, pdf_batch) == ["a/b/two.pdf", "a/one.pdf", "top.pdf"]
    # Excludes win over includes; a folder pattern leaves out everything below it.
    some = cli(
        "ingest", str(root), "-p", "noop",
        "--include", "*.pdf", "--include", "*.txt", "--exclude", "a/b/", "--exclude", "readme.*",
        "--json",
    )  # fmt: skip
    assert some.code == 0, some.stderr
    some_batch = some.json()["batch"]["id"]
    assert some_batch != pdf_batch  # another selection is another batch
    assert _sources(cli, root, some_batch) == ["a/notes.txt", "a/one.pdf", "top.pdf"]
    # Patterns combine with --glob: a file must match both.
    both = cli("ingest", str(root), "-p", "noop", "--glob", "a/**", "--exclude", "*.txt", "--json")
    assert both.code == 0, both.stderr
    both_batch = both.json()["batch"]["id"]
    assert _sources(cli, root, both_batch) == ["a/b/two.pdf", "a/one.pdf"]


def test_an_invalid_or_empty_selection_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    bad = cli("ingest", str(root), "-p", "noop", "--include", "!")
    assert bad.code == 2
    assert "invalid include pattern" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    other = cli("ingest", str(root), "-p", "noop", "--all-types")
    assert other.code == 2
    assert "--all-types is an option of the ingest processor" in other.stderr
    none = cli("ingest", str(root), "-p", "noop", "--exclude", "**")
    assert none.code == 2
    assert "selected by --include/--exclude" in " ".join(none.stderr.split())
    assert cli.scalar("SELECT count(*) FROM batches") == 0


def test_permanent_failures_only_are_not_offered_a_retry(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    root.mkdir()
    (root / "good.md").write_text("# Good\n\nA real document.\n")
    (root / "text.pdf").write_text("plain text that claims to be a PDF\n" * 10)
    (root / "empty.txt").write_bytes(b"")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    result = cli("ingest", str(root))
    assert result.code == 1, result.stderr  # documents failed: scripts rely on exit 1
    text = " ".join(result.stdout.split())
    assert "All 2 failures are permanent (empty_file: 1, unsupported_type: 1)" in text
    assert "retrying will not help" in text
    assert "ledger retry" not in text
    batch_id = cli.scalar("SELECT id FROM batches")
    status = cli("status", batch_id)
    assert status.code == 0, status.stderr
    assert "retrying will not help" in " ".join(status.stdout.split())
    assert "ledger retry" not in status.stdout
    failures = cli("failures", batch_id)
    assert "retrying will not help" in " ".join(failures.stdout.split())
    assert "ledger retry" not in failures.stdout


def test_failures_that_may_pass_later_are_offered_a_retry(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "flaky"
    root.mkdir()
    (root / "one.txt").write_text("one\n")
    result = cli(
        "ingest", str(root), "-p", "sleep", "-o", "seconds=0", "-o", "failure_rate=1",
        "--max-attempts", "1",
    )  # fmt: skip
    assert result.code == 1, result.stderr
    assert "Retry them: ledger retry" in " ".join(result.stdout.split())
    assert "will not help" not in result.stdout
    batch_id = cli.scalar("SELECT id FROM batches")
    status = cli("status", batch_id)
    assert "ledger retry" in " ".join(status.stdout.split())
