"""``ledger ingest DIR --sync``: one pass that submits new and changed files and retires the
documents whose file is gone or no longer selected, leaving other batches' documents alone;
a file that comes back is processed again. Real subprocesses, SQL on the SQLite file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.cli.conftest import Cli


def _row(cli: Cli, batch: str, path: Path) -> tuple[int, str, str | None, int]:
    rows = cli.sql(
        "SELECT d.id, d.status, d.removed_at, "
        "(SELECT count(*) FROM chunks c WHERE c.document_id = d.id) "
        "FROM documents d WHERE d.batch_id = ? AND d.source = ?",
        batch,
        str(path.resolve()),
    )
    assert len(rows) == 1, rows
    return rows[0]


def _counters_exact(cli: Cli) -> None:
    rows = cli.sql(
        "SELECT b.id, b.n_pending, b.n_running, b.n_done, b.n_failed, b.n_skipped, "
        "b.n_cancelled FROM batches b"
    )
    for batch, *counted in rows:
        actual = [
            cli.scalar("SELECT count(*) FROM documents WHERE batch_id = ? AND status = ?", batch, s)
            for s in ("pending", "running", "done", "failed", "skipped", "cancelled")
        ]
        assert counted == actual, batch


def test_sync_retires_the_deleted_and_reprocesses_the_changed(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in {"a": "alpha apples", "b": "bravo bananas", "c": "charlie cherries"}.items():
        (folder / f"{name}.txt").write_text(text + "\n")
    # Another batch (another folder) indexes a file with the same content as b.txt.
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(folder / "b.txt", other / "copy-of-b.txt")

    first = cli("ingest", str(folder), "--json")
    assert first.code == 0, first.stderr
    batch = first.json()["batch"]["id"]
    theirs = cli("ingest", str(other), "--json")
    assert theirs.code == 0, theirs.stderr
    other_batch = theirs.json()["batch"]["id"]
    other_doc = _row(cli, other_batch, other / "copy-of-b.txt")
    assert other_doc[1] == "skipped"  # a duplicate of b.txt's content, already indexed

    (folder / "b.txt").unlink()
    (folder / "c.txt").write_text("charlie changed completely\n")
    future = os.stat(folder / "a.txt").st_mtime + 10
    os.utime(folder / "c.txt", (future, future))
    (folder / "d.txt").write_text("delta dates\n")

    synced = cli("ingest", str(folder), "--sync", "--json")
    assert synced.code == 0, synced.stderr
    summary = synced.json()
    assert summary["batch"]["id"] == batch
    assert (summary["added"], summary["requeued"], summary["removed"]) == (1, 1, 1)
    assert "removed 1 document whose file is gone" in synced.stderr

    b_id, b_status, b_removed, b_chunks = _row(cli, batch, folder / "b.txt")
    assert (b_status, b_chunks) == ("done", 0) and b_removed is not None
    assert cli.scalar("SELECT count(*) FROM chunks WHERE document_id = ?", b_id) == 0
    c_chunks = " ".join(
        r[0]
        for r in cli.sql(
            "SELECT text FROM chunks WHERE document_id = ?", _row(cli, batch, folder / "c.txt")[0]
        )
    )
    assert "changed completely" in c_chunks and "cherries" not in c_chunks
    assert cli.scalar("SELECT count(*) FROM chunks WHERE text LIKE '%cherries%'") == 0
    assert _row(cli, batch, folder / "d.txt")[1:3] == ("done", None)
    # The other batch's document of the same content is untouched.
    assert _row(cli, other_batch, other / "copy-of-b.txt") == other_doc
    assert (
        cli.scalar(
            "SELECT count(*) FROM events WHERE batch_id = ? AND kind = 'documents_removed'", batch
        )
        == 1
    )
    _counters_exact(cli)

    # Unchanged now: a second sync changes nothing.
    again = cli("ingest", str(folder), "--sync", "--json")
    assert again.code == 0 and again.json()["removed"] == 0

    # The file comes back exactly as it was: it is processed again.
    (folder / "b.txt").write_text("bravo bananas\n")
    back = cli("ingest", str(folder), "--sync", "--json")
    assert back.code == 0, back.stderr
    assert back.json()["requeued"] == 1
    assert _row(cli, batch, folder / "b.txt")[1:] == ("done", None, 1)
    _counters_exact(cli)


def test_sync_keeps_another_batchs_holder_of_the_same_file(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "shared.txt").write_text("shared words here\n")
    (folder / "only.txt").write_text("only in the first\n")
    mine = cli("ingest", str(folder), "-b", "mine", "--json")
    assert mine.code == 0, mine.stderr
    # A second batch of the same folder (same paths) runs later: its document now holds
    # the chunks of shared.txt (the first batch's was superseded).
    (folder / "shared.txt").write_text("shared words, newer\n")
    theirs = cli("ingest", str(folder), "-b", "theirs", "-g", "shared*", "--json")
    assert theirs.code == 0, theirs.stderr
    their_doc = _row(cli, "theirs", folder / "shared.txt")
    assert their_doc[1:] == ("done", None, 1)

    # Leaving shared.txt out of "mine" (an exclude, same batch id) retires it there only.
    synced = cli("ingest", str(folder), "-b", "mine", "-x", "shared.txt", "--sync", "--json")
    assert synced.code == 0, synced.stderr
    assert synced.json()["removed"] == 1
    assert _row(cli, "mine", folder / "shared.txt")[2] is not None
    assert _row(cli, "theirs", folder / "shared.txt") == their_doc
    assert _row(cli, "mine", folder / "only.txt")[1:] == ("done", None, 1)
    _counters_exact(cli)


def test_sync_of_an_emptied_folder_retires_everything(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(5):
        (folder / f"f{i}.txt").write_text(f"file {i}\n")
    assert cli("ingest", str(folder), "-b", "gone").code == 0
    for path in folder.iterdir():
        path.unlink()
    synced = cli("ingest", str(folder), "-b", "gone", "--sync", "--json")
    assert synced.code == 0, synced.stderr
    assert synced.json()["removed"] == 5
    assert cli.scalar("SELECT count(*) FROM chunks") == 0
    # Without --sync an empty folder is still a mistake in the command.
    assert cli("ingest", str(folder), "-b", "gone").code == 2


def test_dry_run_does_not_combine_with_sync(cli: Cli, tmp_path: Path) -> None:
    result = cli("ingest", str(tmp_path), "--sync", "--dry-run")
    assert result.code == 2
    assert "--dry-run does not combine with --sync or --watch" in result.stderr


def test_sync_of_one_folder_leaves_the_batch_s_other_folders_alone(
    cli: Cli, tmp_path: Path
) -> None:
    """Two folders submitted into one batch (``--batch``): syncing one of them judges only
    the files under it; the other folder's documents are not "gone"."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "kept.txt").write_text("kept kiwis\n")
    (second / "gone.txt").write_text("gone grapes\n")
    (second / "stays.txt").write_text("staying strawberries\n")
    assert cli("ingest", str(first), "--batch", "shared").code == 0
    assert cli("ingest", str(second), "--batch", "shared").code == 0

    (second / "gone.txt").unlink()
    synced = cli("ingest", str(second), "--batch", "shared", "--sync", "--json")
    assert synced.code == 0, synced.stderr
    assert synced.json()["removed"] == 1
    assert _row(cli, "shared", first / "kept.txt")[2] is None
    assert _row(cli, "shared", second / "stays.txt")[2] is None
    assert _row(cli, "shared", second / "gone.txt")[2] is not None
    _counters_exact(cli)
