"""What every benchmark shares: a fresh ledger, the machine's description, tables, results.

Each benchmark measures its own floor in the same run (the same work done the cheapest way
this machine can do it) and reports the ratio: on a shared, noisy machine absolute times
drift, ratios hold.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"

if str(REPO) not in sys.path:  # run as `python bench/x.py` from a checkout
    sys.path.insert(0, str(REPO))

from ledger.settings import Settings  # noqa: E402


def machine() -> dict[str, Any]:
    """What the figures were measured on, and how busy it was."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory_gb = round(pages / 1024**3, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


@contextmanager
def scratch(name: str) -> Iterator[Path]:
    """A temporary folder for one run's databases, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"ledger-bench-{name}-") as folder:
        yield Path(folder)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def settings_for(home: Path, **overrides: Any) -> Settings:
    """Settings for a benchmark ledger in ``home`` (a SQLite file unless a URL is given)."""
    url = overrides.pop("database_url", None) or sqlite_url(home / "ledger.db")
    # The figures in docs/benchmarks.md were taken with leasing ahead on (a throughput
    # setting, off by default): as many as the worker allows, half its concurrency.
    overrides.setdefault("prefetch", 100_000)
    return Settings(home=home, database_url=url, **overrides)


def raw_connect(path: Path) -> sqlite3.Connection:
    """A raw sqlite3 connection set up like the ledger's: WAL, synchronous=NORMAL."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of this process's threads, by role: ``sql`` for the SQLite
    driver's threads (statements and the hand-offs to them), ``main`` for the event loop's
    (the ledger's Python), ``other`` for the rest. Linux only (read from /proc); empty
    elsewhere."""
    import threading

    tick = os.sysconf("SC_CLK_TCK")
    roles: dict[str, float] = {"main": 0.0, "sql": 0.0, "other": 0.0}
    main_id = threading.main_thread().native_id
    for thread in threading.enumerate():
        try:
            stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
        except OSError:
            return {}
        fields = stat.rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        if thread.native_id == main_id:
            role = "main"
        elif "_connection_worker_thread" in thread.name:
            role = "sql"
        else:
            role = "other"
        roles[role] += seconds
    return roles


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that must import this checkout's ``ledger``."""
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": str(REPO) + (os.pathsep + path if path else ""),
        **extra,
    }


def run_child(args: Sequence[str], *, timeout: float = 3600, **env: str) -> dict[str, Any]:
    """Run ``python <args>`` and parse the JSON object its last stdout line prints."""
    proc = subprocess.run(
        [sys.executable, *args],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:,.2f}"
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (pastes straight into docs/benchmarks.md)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


class Report:
    """Collects one benchmark's rows and writes them, with the machine, to bench/results/."""

    def __init__(self, name: str, params: dict[str, Any]) -> None:
        self.name = name
        self.params = params
        self.started = time.time()
        self.machine_before = machine()
        self.sections: list[dict[str, Any]] = []
        self.notes: list[str] = []

    def section(self, title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.sections.append({"title": title, "headers": list(headers), "rows": list(rows)})
        print(f"\n### {title}\n")
        print(table(headers, rows))
        sys.stdout.flush()

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"\n{text}")

    def write(self, results_dir: Path | None = None) -> Path:
        folder = results_dir or Path(os.environ.get("LEDGER_BENCH_RESULTS", RESULTS))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.json"
        data = {
            "benchmark": self.name,
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(time.time() - self.started, 1),
            "params": self.params,
            "machine": self.machine_before,
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "sections": self.sections,
            "notes": self.notes,
        }
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(
            f"\nload average before {self.machine_before['load_average']}, "
            f"after {data['load_average_after']}; results: {path}"
        )
        return path
