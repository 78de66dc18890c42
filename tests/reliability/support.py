"""Shared tools of the reliability tests: worker subprocesses, deadlines, SQL invariants."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from tests.conftest import sql

ROOT = Path(__file__).resolve().parents[2]

# The ``ingest`` processor (storing chunks) is built on its own branch; tests that need it
# skip with this reason until it is on the branch they run on.
HAS_INGEST = importlib.util.find_spec("ledger.processors.ingest.processor") is not None
NO_INGEST = "the ingest processor (ledger.processors.ingest.processor) is not available yet"


class Worker:
    """A worker process whose output goes to a file (a pipe could fill up and stall it)."""

    pid: int
    log: Path

    def alive(self) -> bool:
        return self.returncode is None

    @property
    def returncode(self) -> int | None:
        raise NotImplementedError

    def kill(self) -> None:
        """SIGKILL, and wait until the process is gone."""
        raise NotImplementedError

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stats(self) -> dict[str, Any]:
        """The JSON stats line the worker printed when it ended normally."""
        for line in reversed(self.output().splitlines()):
            if line.startswith("{"):
                return json.loads(line)  # type: ignore[no-any-return]
        raise AssertionError(f"worker {self.pid} printed no stats:\n{self.output()[-3000:]}")


@dataclass
class WorkerProc(Worker):
    """A worker started as ``python -m tests.helpers.worker_proc``."""

    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:  # type: ignore[override]
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@dataclass
class ForkedWorker(Worker):
    """A worker forked by a :class:`Zygote`; its exit status arrives in ``log.exit``."""

    pid: int
    log: Path

    @property
    def returncode(self) -> int | None:
        exit_file = Path(str(self.log) + ".exit")
        try:
            return int(exit_file.read_text())
        except FileNotFoundError:
            return None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.returncode is None:
            assert time.monotonic() < deadline, f"killed worker {self.pid} was not reaped"
            time.sleep(0.002)


class Zygote:
    """Forks worker processes from one process that has already imported the project
    (``tests.helpers.zygote``): a restart costs milliseconds, not a second of imports."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.zygote"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(log_dir / "zygote.log").open("wb"),
            text=True,
        )
        self.started: list[ForkedWorker] = []

    def start(
        self, url: str, batches: list[str], *, env: dict[str, str] | None = None, **settings: Any
    ) -> ForkedWorker:
        global _counter
        _counter += 1
        log = self.log_dir / f"worker-{_counter:04d}.log"
        full_env = {f"LEDGER_{k.upper()}": str(v) for k, v in settings.items()}
        full_env.update(env or {})
        request = {"url": url, "batches": batches, "env": full_env, "log": str(log)}
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the zygote died: {(self.log_dir / 'zygote.log').read_text()}")
        worker = ForkedWorker(int(json.loads(line)["pid"]), log)
        self.started.append(worker)
        return worker

    def close(self) -> None:
        """Kill every worker still running, then end the zygote."""
        stop_all(self.started)
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_counter = 0


def start_worker(
    url: str,
    batches: list[str],
    log_dir: Path,
    *,
    env: dict[str, str] | None = None,
    **settings: Any,
) -> WorkerProc:
    """Start ``tests.helpers.worker_proc`` on ``url``; ``settings`` become LEDGER_* variables."""
    global _counter
    _counter += 1
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update({f"LEDGER_{k.upper()}": str(v) for k, v in settings.items()})
    full_env.update(env or {})
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"worker-{_counter:04d}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.worker_proc", url, *batches],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return WorkerProc(proc, log)


def stop_all(workers: Sequence[Worker]) -> None:
    """Kill whatever is still running (test clean-up)."""
    for worker in workers:
        if worker.alive():
            worker.kill()


async def wait_for(
    condition: Callable[[], Awaitable[bool] | bool],
    *,
    timeout: float,  # noqa: ASYNC109 - a deadline for polling, not for one awaitable
    what: str,
    interval: float = 0.05,
    check: Callable[[], None] | None = None,
) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds.

    ``check`` runs on every poll and may fail early (a worker that died, say).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


def scalar(url: str, statement: str, **params: Any) -> Any:
    return sql(url, statement, **params)[0][0]


def status_counts(url: str) -> dict[str, int]:
    return dict(sql(url, "SELECT status, count(*) FROM documents GROUP BY status"))


def batch_complete(url: str, batch: str) -> bool:
    return bool(scalar(url, "SELECT completed_at IS NOT NULL FROM batches WHERE id = :b", b=batch))


def assert_done_exactly_once(url: str, n: int) -> None:
    """Every document done, by exactly one ``done`` attempt, and no attempts overlapped."""
    assert status_counts(url) == {"done": n}
    twice = sql(
        url,
        "SELECT document_id, count(*) FROM attempts WHERE outcome = 'done'"
        " GROUP BY document_id HAVING count(*) <> 1",
    )
    assert twice == [], f"documents done more than once: {twice[:10]}"
    assert scalar(url, "SELECT count(DISTINCT document_id) FROM attempts WHERE outcome='done'") == n
    # A document's attempts never overlap: each starts after the previous one ended.
    overlaps = sql(
        url,
        "SELECT a.id, b.id FROM attempts a JOIN attempts b ON a.document_id = b.document_id"
        " AND a.id < b.id AND b.started_at < a.finished_at",
    )
    assert overlaps == [], f"overlapping attempts: {overlaps[:10]}"


def assert_counters_match(url: str) -> None:
    """The per-batch counters kept by triggers equal a GROUP BY over the documents."""
    rows = sql(
        url,
        "SELECT b.id, b.n_pending, b.n_running, b.n_done, b.n_failed, b.n_skipped,"
        " b.n_cancelled,"
        " (SELECT count(*) FROM documents d WHERE d.batch_id = b.id AND d.status = 'pending'),"
        " (SELECT count(*) FROM documents d WHERE d.batch_id = b.id AND d.status = 'running'),"
        " (SELECT count(*) FROM documents d WHERE d.batch_id = b.id AND d.status = 'done'),"
        " (SELECT count(*) FROM documents d WHERE d.batch_id = b.id AND d.status = 'failed'),"
        " (SELECT count(*) FROM documents d WHERE d.batch_id = b.id AND d.status = 'skipped'),"
        " (SELECT count(*) FROM documents d WHERE d.batch_id = b.id AND d.status = 'cancelled')"
        " FROM batches b",
    )
    for row in rows:
        assert tuple(row[1:7]) == tuple(row[7:13]), f"counters of batch {row[0]}: {row}"


def assert_sqlite_intact(url: str) -> None:
    if url.startswith("sqlite"):
        assert sql(url, "PRAGMA integrity_check") == [("ok",)]
        assert sql(url, "PRAGMA foreign_key_check") == []


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes (0 when gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


class RssSampler:
    """Samples the resident memory of a process tree in the background; keeps the peak."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self.pids: list[int] = []
        self._task: asyncio.Task[None] | None = None

    def watch(self, pid: int) -> None:
        self.pids.append(pid)

    async def __aenter__(self) -> RssSampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            total = sum(await asyncio.to_thread(lambda: [tree_rss(p) for p in self.pids]))
            self.peak = max(self.peak, total)
            await asyncio.sleep(self.interval)
