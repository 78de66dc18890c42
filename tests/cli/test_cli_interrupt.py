"""Ctrl-C during ``ledger ingest``: graceful first, immediate second; rerunning resumes."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from tests.cli.conftest import Cli, make_corpus


def finish(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, str]:
    stdout, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stdout, stderr


def assert_done_once(cli: Cli, documents: int) -> None:
    """Every document done by exactly one attempt, and no other attempt: documents claimed
    as the stop arrived go back unstarted, which is not an attempt."""
    assert cli.sql("SELECT outcome, count(*) FROM attempts GROUP BY 1") == [("done", documents)]
    assert cli.scalar("SELECT count(*) FROM documents WHERE attempts > 1") == 0


def test_sigint_stops_gracefully_and_the_same_command_resumes(cli: Cli, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 120)
    args = ["ingest", str(corpus), "-p", "sleep", "-o", "seconds=0.05", "-c", "4"]
    proc = cli.start(*args)
    cli.wait_for("SELECT count(*) FROM documents WHERE status = 'done'", lambda n: n >= 10)
    proc.send_signal(signal.SIGINT)
    code, stdout, stderr = finish(proc)

    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert "Stopping after the" in stdout
    assert "Continue where it stopped by running the same command:" in stdout
    done = cli.scalar("SELECT count(*) FROM documents WHERE status = 'done'")
    assert 10 <= done < 120
    assert cli.scalar("SELECT count(*) FROM documents WHERE status = 'running'") == 0
    # Graceful: documents in flight were finished, none was given back half done.
    assert_done_once(cli, done)

    code, stdout, stderr = finish(cli.start(*args), timeout=60)
    assert code == 0, stderr
    assert "resuming batch" in stdout
    assert f"{120 - done} to process" in stdout
    assert cli.sql("SELECT status, count(*) FROM documents GROUP BY 1") == [("done", 120)]
    # No document was processed twice: exactly one successful attempt each, nothing else.
    assert_done_once(cli, 120)
    assert cli.scalar("SELECT count(*) FROM batches") == 1


def test_second_sigint_stops_at_once(cli: Cli, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 10)
    proc = cli.start("ingest", str(corpus), "-p", "sleep", "-o", "seconds=60", "-c", "3")
    cli.wait_for("SELECT count(*) FROM documents WHERE status = 'running'", lambda n: n == 3)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None  # the first Ctrl-C waits for the documents in flight
    proc.send_signal(signal.SIGINT)
    code, stdout, stderr = finish(proc, timeout=20)

    assert code == 130, stderr
    assert time.monotonic() - started < 15  # nowhere near the 60 s the documents need
    assert "Stopping now." in stdout
    assert cli.scalar("SELECT count(*) FROM documents WHERE status = 'running'") == 0
    assert cli.sql("SELECT status, count(*) FROM documents GROUP BY 1") == [("pending", 10)]
    assert cli.sql("SELECT outcome, count(*) FROM attempts GROUP BY 1") == [("released", 3)]


def test_sigterm_is_graceful_too(cli: Cli, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 60)
    proc = cli.start("ingest", str(corpus), "-p", "sleep", "-o", "seconds=0.05", "-c", "2")
    cli.wait_for("SELECT count(*) FROM documents WHERE status = 'done'", lambda n: n >= 4)
    proc.send_signal(signal.SIGTERM)
    code, _stdout, stderr = finish(proc)
    assert code == 130, stderr
    assert cli.scalar("SELECT count(*) FROM documents WHERE status = 'running'") == 0
    assert cli.scalar("SELECT count(*) FROM attempts WHERE outcome <> 'done'") == 0


def test_pausing_the_batch_stops_ingest(cli: Cli, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 60)
    # Slow enough (60 x 0.3 s / 2) that the pause, a second process, lands mid-batch.
    args = ["ingest", str(corpus), "-p", "sleep", "-o", "seconds=0.3", "-c", "2"]
    proc = cli.start(*args)
    cli.wait_for("SELECT count(*) FROM documents WHERE status = 'done'", lambda n: n >= 4)
    batch_id = cli.scalar("SELECT id FROM batches")
    assert cli("pause", batch_id).code == 0
    code, stdout, stderr = finish(proc)
    assert code == 1, stderr
    assert "batch was paused" in stdout
    assert f"ledger resume {batch_id}" in stdout
    assert cli.scalar("SELECT count(*) FROM documents WHERE status = 'running'") == 0

    # Running the command on a paused batch says what to do instead of waiting forever.
    again = cli(*args)
    assert again.code == 1
    assert f"ledger resume {batch_id}" in again.stdout

    assert cli("resume", batch_id).code == 0
    code, _stdout, stderr = finish(cli.start(*args), timeout=60)
    assert code == 0, stderr
    assert_done_once(cli, 60)


def test_worker_finishes_an_interrupted_batch(cli: Cli, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 60)
    proc = cli.start("ingest", str(corpus), "-p", "sleep", "-o", "seconds=0.05", "-c", "2")
    cli.wait_for("SELECT count(*) FROM documents WHERE status = 'done'", lambda n: n >= 4)
    proc.send_signal(signal.SIGINT)
    assert finish(proc)[0] == 130
    assert cli.scalar("SELECT count(*) FROM documents WHERE status = 'pending'") > 0

    result = cli("worker", "--burst", "-c", "8")
    assert result.code == 0, result.stderr
    assert "Worker stopped." in result.stderr
    assert_done_once(cli, 60)


def test_worker_stops_on_sigterm(cli: Cli) -> None:
    assert cli("db", "upgrade").code == 0
    proc = cli.start("worker")
    cli.wait_for("SELECT count(*) FROM workers WHERE stopped_at IS NULL", lambda n: n == 1)
    proc.send_signal(signal.SIGTERM)
    code, _stdout, stderr = finish(proc, timeout=20)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert cli.scalar("SELECT count(*) FROM workers WHERE stopped_at IS NOT NULL") == 1
