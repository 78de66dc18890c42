"""``ledger ingest DIR --watch``: a real watcher subprocess keeps a folder and the index in
step (files added, changed, deleted, a burst, temporary names), stops cleanly on Ctrl-C, and
after a SIGKILL a restart catches up with what changed while it was down. Checked with SQL
on the ledger's SQLite file, polled with generous deadlines (never timed)."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.embed.server import EmbeddingServer
from tests.embed.support import PROFILE, embedder_profiles

WAIT = 90.0  # generous: the machine is shared


@pytest.fixture(autouse=True)
def _watchfiles_installed() -> None:
    if importlib.util.find_spec("watchfiles") is None:
        message = "watchfiles is not installed (pip install 'ledger[watch]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def embedder(cli: Cli) -> Iterator[EmbeddingServer]:
    """A real embedding server on loopback, as the ``bow`` profile of the watched ingest."""
    server = EmbeddingServer(max_tokens=512).start()
    cli.env["LEDGER_EMBEDDERS"] = embedder_profiles(server.base_url)
    try:
        yield server
    finally:
        server.down()


def _watch(cli: Cli, folder: Path, *more: str) -> subprocess.Popen[str]:
    return cli.start(
        "ingest", str(folder), "--watch", "--debounce", "0.2", "-o", f"embedder={PROFILE}", *more
    )


def _doc(cli: Cli, path: Path) -> tuple[int, str, str | None]:
    row = cli.sql(
        "SELECT id, status, removed_at FROM documents WHERE source = ?", str(path.resolve())
    )
    assert len(row) == 1, row
    return row[0]


def _wait_done(cli: Cli, path: Path) -> int:
    """Poll until ``path``'s document is done and holds chunks; its id."""
    source = str(path.resolve())
    cli.wait_for(
        "SELECT count(*) FROM documents d WHERE d.source = "
        f"'{source}' AND d.status = 'done' AND d.removed_at IS NULL "
        "AND EXISTS (SELECT 1 FROM chunks c WHERE c.document_id = d.id)",
        lambda n: n == 1,
        timeout=WAIT,
    )
    return int(_doc(cli, path)[0])


def _text_of(cli: Cli, doc_id: int) -> str:
    return " ".join(r[0] for r in cli.sql("SELECT text FROM chunks WHERE document_id = ?", doc_id))


def _vectors_of(cli: Cli, doc_id: int) -> int:
    return int(
        cli.scalar(
            "SELECT count(*) FROM chunk_vectors v JOIN chunks c ON c.id = v.chunk_id "
            "WHERE c.document_id = ?",
            doc_id,
        )
    )


def _index_is_consistent(cli: Cli) -> None:
    """No vector without its chunk, no chunk of a retired document, counters exact."""
    assert (
        cli.scalar(
            "SELECT count(*) FROM chunk_vectors WHERE chunk_id NOT IN (SELECT id FROM chunks)"
        )
        == 0
    )
    assert (
        cli.scalar(
            "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE d.removed_at IS NOT NULL"
        )
        == 0
    )
    rows = cli.sql(
        "SELECT b.n_pending + b.n_running + b.n_done + b.n_failed + b.n_skipped "
        "+ b.n_cancelled, (SELECT count(*) FROM documents d WHERE d.batch_id = b.id), "
        "b.n_done, (SELECT count(*) FROM documents d WHERE d.batch_id = b.id "
        "AND d.status = 'done') FROM batches b"
    )
    for counted, actual, done, actual_done in rows:
        assert (counted, done) == (actual, actual_done)


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=WAIT)
    return proc.returncode, out, err


def test_watch_adds_changes_deletes_and_takes_a_burst(
    cli: Cli, tmp_path: Path, embedder: EmbeddingServer
) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    first = folder / "first.txt"
    first.write_text("telescope galaxy nebula orbit\n")
    proc = _watch(cli, folder)
    try:
        first_id = _wait_done(cli, first)
        assert _vectors_of(cli, first_id) >= 1

        added = folder / "added.txt"
        added.write_text("flour butter oven simmer\n")
        added_id = _wait_done(cli, added)

        # Changed: the new run's chunks replace the old ones; no old text is left anywhere.
        first.write_text("mast keel harbour anchor tide rudder\n")
        cli.wait_for(
            f"SELECT count(*) FROM chunks WHERE document_id = {first_id} AND text LIKE '%harbour%'",
            lambda n: n >= 1,
            timeout=WAIT,
        )
        assert cli.scalar("SELECT count(*) FROM chunks WHERE text LIKE '%telescope%'") == 0

        # Deleted: its chunks and vectors leave the index, the row records it.
        added.unlink()
        cli.wait_for(
            f"SELECT count(*) FROM documents WHERE id = {added_id} AND removed_at IS NOT NULL",
            lambda n: n == 1,
            timeout=WAIT,
        )
        assert cli.scalar(f"SELECT count(*) FROM chunks WHERE document_id = {added_id}") == 0
        assert _vectors_of(cli, added_id) == 0
        assert cli.scalar("SELECT count(*) FROM chunks WHERE text LIKE '%flour%'") == 0

        # Temporary names and dotfiles never reach the ledger; a burst is taken whole.
        (folder / "download.pdf.part").write_text("half a file")
        (folder / ".hidden.txt").write_text("dot file")
        (folder / "notes.txt~").write_text("backup")
        burst = folder / "burst"
        burst.mkdir()
        for i in range(200):
            (burst / f"b{i:03d}.txt").write_text(f"gardening compost seedling number {i}\n")
        cli.wait_for(
            "SELECT count(*) FROM documents WHERE status = 'done' AND removed_at IS NULL "
            "AND source LIKE '%/burst/b%'",
            lambda n: n == 200,
            timeout=WAIT * 2,
        )
        assert (
            cli.scalar(
                "SELECT count(*) FROM documents WHERE source LIKE '%.part' "
                "OR source LIKE '%/.hidden.txt' OR source LIKE '%~'"
            )
            == 0
        )
        _index_is_consistent(cli)

        # A folder moved away (one event, for the folder) retires every file under it; a
        # folder moved in (likewise) has all its files taken.
        burst.rename(tmp_path / "moved-away")
        cli.wait_for(
            "SELECT count(*) FROM documents WHERE removed_at IS NOT NULL "
            "AND source LIKE '%/burst/b%'",
            lambda n: n == 200,
            timeout=WAIT,
        )
        incoming = tmp_path / "incoming"
        (incoming / "deep").mkdir(parents=True)
        for i in range(3):
            (incoming / "deep" / f"in{i}.txt").write_text(f"chess bishop rook {i}\n")
        incoming.rename(folder / "incoming")
        cli.wait_for(
            "SELECT count(*) FROM documents WHERE status = 'done' "
            "AND source LIKE '%/incoming/deep/in%'",
            lambda n: n == 3,
            timeout=WAIT,
        )
        _index_is_consistent(cli)
        assert cli.scalar("SELECT count(*) FROM chunks WHERE text LIKE '%gardening%'") == 0
    finally:
        code, out, err = _stop(proc)
    assert code == 0, err
    assert "changes: 1 file added, 0 changed, 0 removed" in out + err
    assert "0 changed, 200 removed" in out + err
    assert "0 changed, 1 removed" in out + err


def test_restart_after_sigkill_catches_up(
    cli: Cli, tmp_path: Path, embedder: EmbeddingServer
) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    kept, changed, deleted = (folder / n for n in ("kept.txt", "changed.txt", "deleted.txt"))
    kept.write_text("bishop castling gambit\n")
    changed.write_text("basalt sediment fault\n")
    deleted.write_text("compost seedling prune\n")
    proc = _watch(cli, folder)
    try:
        ids = {p.name: _wait_done(cli, p) for p in (kept, changed, deleted)}
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=WAIT)
    assert proc.returncode == -signal.SIGKILL

    # While nobody watches: a change, a deletion, a new file.
    changed.write_text("quasar comet meteor eclipse\n")
    future = time.time() + 5  # a different mtime whatever the clock's resolution
    os.utime(changed, (future, future))
    deleted.unlink()
    new = folder / "new.txt"
    new.write_text("regatta spinnaker hull\n")

    proc = _watch(cli, folder)
    try:
        _wait_done(cli, new)
        cli.wait_for(
            f"SELECT count(*) FROM documents WHERE id = {ids['deleted.txt']} "
            "AND removed_at IS NOT NULL",
            lambda n: n == 1,
            timeout=WAIT,
        )
        cli.wait_for(
            f"SELECT count(*) FROM chunks WHERE document_id = {ids['changed.txt']} "
            "AND text LIKE '%quasar%'",
            lambda n: n >= 1,
            timeout=WAIT,
        )
        assert cli.scalar("SELECT count(*) FROM chunks WHERE text LIKE '%basalt%'") == 0
        assert cli.scalar("SELECT count(*) FROM chunks WHERE text LIKE '%compost%'") == 0
        assert _doc(cli, kept)[1] == "done"
        _index_is_consistent(cli)
    finally:
        code, _, err = _stop(proc)
    assert code == 0, err


def test_a_file_changed_while_its_document_runs_is_taken_after_it(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    slow = folder / "slow.txt"
    slow.write_text("first version\n")
    proc = cli.start(
        "ingest", str(folder), "--watch", "--debounce", "0.2", "-p", "sleep", "-o", "seconds=3"
    )
    try:
        cli.wait_for(
            "SELECT count(*) FROM documents WHERE status = 'running'",
            lambda n: n == 1,
            timeout=WAIT,
        )
        slow.write_text("second, longer version of the file\n")
        size = slow.stat().st_size
        # Submit leaves a running document alone; the watcher applies the change once the
        # run ended, and the document is processed again with the new facts.
        cli.wait_for(
            f"SELECT count(*) FROM documents WHERE source_size = {size} AND status = 'done'",
            lambda n: n == 1,
            timeout=WAIT,
        )
        assert cli.scalar("SELECT count(*) FROM attempts") == 2
    finally:
        code, _, err = _stop(proc)
    assert code == 0, err


def test_without_the_watch_extra_one_line_says_what_to_install(cli: Cli, tmp_path: Path) -> None:
    hide = tmp_path / "hide"
    hide.mkdir()
    # Loaded at start-up: the import system then finds no watchfiles.
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['watchfiles'] = None\n")
    (tmp_path / "watched").mkdir()
    result = cli(
        "ingest",
        str(tmp_path / "watched"),
        "--watch",
        env={"PYTHONPATH": f"{hide}{os.pathsep}{cli.env['PYTHONPATH']}"},
    )
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'ledger[watch]'" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
