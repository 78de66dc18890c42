"""Fixtures for the command-line tests: every test runs the real ``ledger`` command in a
subprocess, against its own data folder, and checks the database with SQL."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Cli:
    """Runs ``python -m ledger`` with a private LEDGER_HOME."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.db = home / "ledger.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        env.update(
            {
                "LEDGER_HOME": str(home),
                "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
                "PYTHONUNBUFFERED": "1",
                # Short polls keep the tests quick; retries come back fast.
                "LEDGER_POLL_SECONDS": "0.05",
                "LEDGER_BACKOFF_BASE_SECONDS": "0.01",
                "LEDGER_BACKOFF_CAP_SECONDS": "0.05",
            }
        )
        env.pop("COLUMNS", None)
        self.env = env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "ledger", *args]

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> Result:
        proc = subprocess.run(
            self.command(*args),
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as conn:
            return list(conn.execute(query, params))

    def scalar(self, query: str, *params: Any) -> Any:
        rows = self.sql(query, *params)
        return rows[0][0] if rows else None

    def wait_for(self, query: str, predicate: Callable[[Any], bool], timeout: float = 30) -> Any:
        """Poll a scalar query until ``predicate`` holds (the database is the truth)."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            if self.db.exists():
                try:
                    value = self.scalar(query)
                except sqlite3.OperationalError:  # the schema is still being created
                    value = None
                if value is not None and predicate(value):
                    return value
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting on {query!r} (last value {value!r})")


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")


def make_corpus(root: Path, count: int, *, folders: int = 3, suffix: str = ".txt") -> Path:
    """``count`` small files spread over nested folders."""
    for i in range(count):
        folder = root / f"part{i % folders}" / f"sub{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"doc{i:05d}{suffix}").write_text(f"document {i}\n")
    return root


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return make_corpus(tmp_path / "docs", 30)
