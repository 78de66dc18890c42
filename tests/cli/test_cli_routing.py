"""Routing by capability with real processes: ``ledger serve`` runs its in-process worker,
and ``ledger ingest`` runs a processor that only the CLI's environment can import.

The server's worker never claims that batch, so the documents fail with the processor's
own error (ZeroDivisionError), never with "invalid processor ... cannot import". The
ingest counts only its own worker's work, and Ctrl-C says who goes on with the batch.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Cli, make_corpus
from tests.helpers.server import free_port

BOOM = "def process(doc):\n    return {'ratio': 1 / 0}\n"


@pytest.fixture
def server(cli: Cli) -> Iterator[subprocess.Popen[str]]:
    """``ledger serve`` with its in-process worker, in the environment the CLI tests share
    (without the folder that holds ``boom``)."""
    assert cli("db", "upgrade").code == 0
    port = free_port()
    proc = cli.start("serve", "--port", str(port))
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        cli.wait_for(
            f"SELECT count(*) FROM workers WHERE pid = {proc.pid} AND stopped_at IS NULL",
            lambda n: n == 1,
        )
        yield proc
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def _server_worker(cli: Cli, proc: subprocess.Popen[str]) -> str:
    return str(cli.scalar("SELECT id FROM workers WHERE pid = ?", proc.pid))


def test_a_processor_only_the_cli_has_fails_with_its_own_error(
    cli: Cli, server: subprocess.Popen[str], tmp_path: Path
) -> None:
    code_dir = tmp_path / "only_here"
    code_dir.mkdir()
    (code_dir / "boom.py").write_text(BOOM)
    corpus = make_corpus(tmp_path / "docs", 12)
    # Only the CLI's environment can import boom. The circuit breaker would pause the batch
    # after 20 failed attempts (36 here): this test is about which worker records them.
    here = {"PYTHONPATH": f"{code_dir}:{cli.env['PYTHONPATH']}", "LEDGER_BREAKER_WINDOW": "1000"}

    result = cli("ingest", str(corpus), "-p", "boom:process", "--json", env=here, timeout=120)
    assert result.code == 1, result.stderr
    data = result.json()
    assert data["batch"]["counts"]["failed"] == 12, result.stderr[-3000:]
    assert data["processed"] == 12  # all by this run's own worker
    assert data["other_workers_continue"] == 0
    messages = [f["error_message"] for f in data["first_failures"]]
    assert messages and all(m.startswith("ZeroDivisionError") for m in messages), messages

    server_id = _server_worker(cli, server)
    assert "boom:process" not in json.loads(
        cli.scalar("SELECT processors FROM workers WHERE id = ?", server_id)
    )
    cli_workers = cli.sql("SELECT id, processors FROM workers WHERE id <> ?", server_id)
    assert len(cli_workers) == 1 and "boom:process" in json.loads(cli_workers[0][1])
    # Every attempt (3 per document) was the CLI worker's, each failing with the real error.
    rows = cli.sql("SELECT worker_id, error_message FROM attempts")
    assert len(rows) == 12 * 3
    assert {w for w, _ in rows} == {cli_workers[0][0]}
    assert all(m.startswith("ZeroDivisionError") for _, m in rows)
    assert not any("invalid processor" in m or "cannot import" in m for _, m in rows)


def test_ctrl_c_stops_this_run_and_says_the_server_goes_on(
    cli: Cli, server: subprocess.Popen[str], tmp_path: Path
) -> None:
    corpus = make_corpus(tmp_path / "docs", 200)
    proc = cli.start("ingest", str(corpus), "-p", "sleep", "-o", "seconds=0.1", "-c", "4", "--json")
    server_id = _server_worker(cli, server)
    # Both workers serve the batch (the server's can run 'sleep' too).
    cli.wait_for(f"SELECT count(*) FROM attempts WHERE worker_id = '{server_id}'", lambda n: n >= 5)
    cli.wait_for(
        f"SELECT count(*) FROM attempts WHERE worker_id <> '{server_id}'", lambda n: n >= 5
    )
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    data = json.loads(stdout)
    assert data["interrupted"] is True
    assert data["other_workers_continue"] == 1
    (own,) = cli.sql("SELECT id FROM workers WHERE pid = ?", proc.pid)
    own_done = cli.scalar("SELECT count(*) FROM attempts WHERE worker_id = ?", own[0])
    assert data["processed"] == own_done
    # The CLI's worker stopped; the server's goes on and finishes the batch.
    assert cli.scalar("SELECT stopped_at IS NOT NULL FROM workers WHERE id = ?", own[0]) == 1
    cli.wait_for(
        "SELECT count(*) FROM documents WHERE status = 'done'", lambda n: n == 200, timeout=120
    )
    server_done = cli.scalar("SELECT count(*) FROM attempts WHERE worker_id = ?", server_id)
    assert own_done + server_done == 200 and server_done > 0


def test_ctrl_c_text_names_who_continues(
    cli: Cli, server: subprocess.Popen[str], tmp_path: Path
) -> None:
    corpus = make_corpus(tmp_path / "docs", 200)
    proc = cli.start("ingest", str(corpus), "-p", "sleep", "-o", "seconds=0.1", "-c", "2")
    cli.wait_for("SELECT count(*) FROM attempts", lambda n: n >= 10)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "1 other worker that can run processor 'sleep' continue this batch" in stdout
