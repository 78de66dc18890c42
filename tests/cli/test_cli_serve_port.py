"""``ledger serve`` on a port that is taken: one clear line, exit 1, nothing started."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.cli.conftest import Cli


def test_busy_port_is_refused_before_anything_starts(cli: Cli) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("serve", "--port", str(port), timeout=60)
    assert result.code == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert "--port" in lines[0]
    # No worker was registered: the refusal came before anything started.
    assert not cli.db.exists() or cli.scalar("SELECT count(*) FROM workers") == 0


def test_worker_log_line_is_readable(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("a.txt", "b.txt"):
        (folder / name).write_text(name)
    args = ["-p", "sleep", "-o", "seconds=0", "-o", "failure_rate=1", "--max-attempts", "1"]
    submitted = cli("ingest", str(folder), *args, "--json")
    assert submitted.code == 1, submitted.stderr
    assert cli("retry", submitted.json()["batch"]["id"]).code == 0
    result = cli("-v", "worker", "--burst")
    assert result.code == 0, result.stderr
    assert "WorkerStats(" not in result.stderr
    stopped = [line for line in result.stderr.splitlines() if " stopped: " in line]
    assert len(stopped) == 1, result.stderr
    assert stopped[0].endswith(" s")
    assert "2 claimed, 2 failed in " in stopped[0], stopped[0]
