"""``ledger worker`` as a real process, for tests that end its connections or wake it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_cli_worker(url: str, **settings: str) -> subprocess.Popen[str]:
    """``ledger worker`` on ``url`` with ``LEDGER_<NAME>`` settings, none inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["LEDGER_DATABASE_URL"] = url
    env.update({f"LEDGER_{name.upper()}": value for name, value in settings.items()})
    return subprocess.Popen(
        [sys.executable, "-m", "ledger", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
