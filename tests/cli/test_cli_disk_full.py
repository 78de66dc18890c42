"""A database whose disk is full: ``ledger ingest`` retries a bounded number of times, then
stops with one line and exit code 3; SIGTERM is honoured all along, twice means at once.

The full disk is real as far as SQLite can tell: the ingest runs with a file size limit
(RLIMIT_FSIZE, no privileges needed), so its writes to the database and its write-ahead log
fail with an I/O error part-way through the run, exactly where a full disk would.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, make_corpus

# Enough for the resubmission to fit in the write-ahead log, not for the processing.
FILE_SIZE_LIMIT = 250_000
DOCUMENTS = 300


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


def _changed_corpus(cli: Cli, tmp_path: Path) -> Path:
    """A corpus ingested once, then touched: running again must process all of it again."""
    corpus = make_corpus(tmp_path / "docs", DOCUMENTS)
    first = cli("ingest", str(corpus), "-p", "noop")
    assert first.code == 0, first.stderr
    later = time.time() + 10
    for path in corpus.rglob("*.txt"):
        os.utime(path, (later, later))
    return corpus


def _start_limited(cli: Cli, corpus: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli.command("ingest", str(corpus), "-p", "noop"),
        env={**cli.env, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        preexec_fn=_limited,
    )


def test_disk_full_stops_with_exit_code_3(cli: Cli, tmp_path: Path) -> None:
    corpus = _changed_corpus(cli, tmp_path)
    # The documents whose outcomes could not be written are left to their leases: short
    # ones, so the run with room again takes them back in seconds, not a minute.
    proc = _start_limited(
        cli,
        corpus,
        {"LEDGER_WRITE_FAILURE_MAX_WAIT_SECONDS": "2", "LEDGER_LEASE_SECONDS": "3"},
    )
    _stdout, stderr = proc.communicate(timeout=120)

    assert proc.returncode == 3, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot write to the database: ")
    assert "(is its disk full?)" in last
    assert "Traceback" not in stderr
    # Nothing was lost: with room again, the same command finishes the batch.
    again = cli("ingest", str(corpus), "-p", "noop")
    assert again.code == 0, again.stderr
    assert cli.sql("SELECT status, count(*) FROM documents GROUP BY 1") == [("done", DOCUMENTS)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_ends_a_run_stuck_on_a_full_disk(
    cli: Cli, tmp_path: Path, signum: signal.Signals
) -> None:
    corpus = _changed_corpus(cli, tmp_path)
    # A retry budget far longer than the test: only the signals can end this run.
    proc = _start_limited(
        cli,
        corpus,
        {
            "LEDGER_WRITE_FAILURE_ATTEMPTS": "100",
            "LEDGER_WRITE_FAILURE_MAX_WAIT_SECONDS": "3600",
        },
    )
    lines: list[str] = []
    retrying = threading.Event()
    stopping = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "failed" in line or "claiming:" in line:
                retrying.set()

    def read_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "Stopping after" in line:
                stopping.set()

    readers = [threading.Thread(target=f, daemon=True) for f in (read_stderr, read_stdout)]
    for reader in readers:
        reader.start()
    assert retrying.wait(60), "".join(lines)
    proc.send_signal(signum)
    # The first is seen before the second is sent: two signals sent at once may arrive as one.
    assert stopping.wait(30), "".join(lines)
    proc.send_signal(signum)
    proc.wait(timeout=30)
    for reader in readers:
        reader.join(timeout=10)
    stderr = "".join(lines)

    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "generator already executing" not in stderr
