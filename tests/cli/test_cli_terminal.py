"""In a terminal ``ledger ingest`` draws a live progress bar (run under a real pty)."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

from tests.cli.conftest import Cli, make_corpus


def run_in_pty(cli: Cli, *args: str, timeout: float = 60) -> tuple[int, str]:
    master, slave = pty.openpty()
    env = {**cli.env, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    proc = subprocess.Popen(
        cli.command(*args), env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=10), b"".join(chunks).decode(errors="replace")


def test_live_bar_in_a_terminal(cli: Cli, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 40)
    code, output = run_in_pty(
        cli, "ingest", str(corpus), "-p", "sleep", "-o", "seconds=0.05", "-c", "2"
    )
    assert code == 0, output
    assert "\x1b[" in output  # drawn with terminal control codes, redrawn in place
    assert "Ingesting" in output
    assert "40/40" in output
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output)
    assert "→ docs/part" in plain  # the file being worked on
    assert "progress " not in output  # not the plain lines meant for logs
    assert "Done" in output
