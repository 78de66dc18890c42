"""Status at scale: batch progress on a 1,000,000-document ledger while two workers write.

Run: python bench/status_scale.py [--docs 1000000] [--requests 200] [--cli 5]

1. Builds the ledger with the core submit (one batch, sources streamed from a generator, so
   memory stays bounded) and reports how long that took.
2. Starts two ``ledger worker`` processes on the batch (``noop``: they write as fast as they
   can, every finish moving the batch's counters) and a real uvicorn server.
3. While they write: ``GET /batches/{id}`` over HTTP, ``ledger.reads.progress`` (the call
   ``ledger status`` makes) in process, and ``ledger status --json`` as a subprocess.

Floors, measured in the same run: ``GET /health`` on the same server (HTTP and framework
cost without the database), and the raw sqlite3 reads the progress is made of (the batch's
counter row; and, for comparison, ``GROUP BY status`` over the batch, which progress avoids).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from harness import (
    Report,
    child_env,
    median,
    percentile,
    raw_connect,
    scratch,
    settings_for,
)

from ledger.app import Ledger
from ledger.db import migrate
from ledger.model import BatchSpec, SourceSpec

BATCH = "status-scale"
API = "/api/v1"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def build(home: Path, docs: int) -> float:
    settings = settings_for(home)
    await migrate.upgrade_async(settings.url)
    async with await Ledger.open(settings) as ledger:
        started = time.perf_counter()
        result = await ledger.queue.submit(
            BatchSpec(processor="noop", id=BATCH),
            (SourceSpec(source=f"/bench/scale/doc-{i:08d}") for i in range(docs)),
        )
        assert result.added == docs
        return time.perf_counter() - started


def start_server(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "ledger.api.app:from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=(home / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError((home / "server.log").read_text())
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("server did not start")
        time.sleep(0.05)


def timed_gets(client: httpx.Client, path: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times


async def progress_calls(home: Path, n: int) -> tuple[list[float], int]:
    async with await Ledger.open(settings_for(home)) as ledger:
        times = []
        finished = 0
        for _ in range(n):
            started = time.perf_counter()
            progress = await ledger.reads.progress(BATCH)
            times.append((time.perf_counter() - started) * 1000)
            finished = progress.batch.finished
        return times, finished


def raw_reads(db: Path, n: int) -> tuple[list[float], list[float]]:
    conn = raw_connect(db)
    counters, group_by = [], []
    for _ in range(n):
        started = time.perf_counter()
        conn.execute(
            "SELECT n_pending, n_running, n_done, n_failed, n_skipped, n_cancelled"
            " FROM batches WHERE id = ?",
            (BATCH,),
        ).fetchone()
        counters.append((time.perf_counter() - started) * 1000)
    for _ in range(max(3, n // 20)):
        started = time.perf_counter()
        conn.execute(
            "SELECT status, count(*) FROM documents WHERE batch_id = ? GROUP BY status",
            (BATCH,),
        ).fetchall()
        group_by.append((time.perf_counter() - started) * 1000)
    conn.close()
    return counters, group_by


def row(what: str, times: list[float], floor_p95: float | None = None) -> list[Any]:
    p95 = percentile(times, 95)
    return [what, len(times), median(times), p95, max(times), p95 / floor_p95 if floor_p95 else "-"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--cli", type=int, default=5)
    parser.add_argument("--worker-concurrency", type=int, default=64)
    args = parser.parse_args()
    report = Report("status_scale", vars(args))
    with scratch("status") as home:
        build_s = asyncio.run(build(home, args.docs))
        settings = settings_for(home)
        env = child_env(
            LEDGER_HOME=str(home),
            LEDGER_DATABASE_URL=settings.url,
            LEDGER_RATE_LIMIT_PER_MINUTE="0",
            LEDGER_HOST="127.0.0.1",
        )
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ledger",
                    "worker",
                    "--batch",
                    BATCH,
                    "-c",
                    str(args.worker_concurrency),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=(home / f"worker-{i}.log").open("wb"),
            )
            for i in range(2)
        ]
        server, base = start_server(home, env)
        try:
            time.sleep(2.0)  # let the workers reach full speed
            with httpx.Client(base_url=base, timeout=30) as client:
                timed_gets(client, f"{API}/batches/{BATCH}", 5)  # warm up
                health = timed_gets(client, "/health", args.requests)
                api = timed_gets(client, f"{API}/batches/{BATCH}", args.requests)
                finished_before = client.get(f"{API}/batches/{BATCH}").json()
            progress, _ = asyncio.run(progress_calls(home, args.requests))
            cli = []
            for _ in range(args.cli):
                started = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "ledger", "status", BATCH, "--json"],
                    env=env,
                    check=True,
                    capture_output=True,
                )
                cli.append((time.perf_counter() - started) * 1000)
            counters, group_by = raw_reads(home / "ledger.db", args.requests)
            with httpx.Client(base_url=base, timeout=30) as client:
                finished_after = client.get(f"{API}/batches/{BATCH}").json()
        finally:
            for proc in [*workers, server]:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in [*workers, server]:
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
    health_p95 = percentile(health, 95)
    counters_p95 = percentile(counters, 95)
    report.section(
        f"building the ledger: core submit of {args.docs:,} documents",
        ["documents", "seconds", "docs/s"],
        [[args.docs, build_s, args.docs / build_s]],
    )
    report.section(
        f"status of a {args.docs:,}-document batch while 2 workers write (milliseconds)",
        ["what", "calls", "p50", "p95", "max", "p95 / its floor's p95"],
        [
            row("GET /batches/{id} (uvicorn, HTTP)", api, health_p95),
            row("floor: GET /health, same server", health),
            row("ledger.reads.progress (in process)", progress, counters_p95),
            row("floor: raw counter-row read", counters),
            row("ledger status --json (whole CLI process)", cli),
            row("for comparison: raw GROUP BY status", group_by),
        ],
    )
    report.note(
        "workers' progress during the measurement: "
        f"{_finished(finished_before):,} -> {_finished(finished_after):,} documents finished"
    )
    report.note("target: p95 under 50 ms (GET /batches/{id} and ledger.reads.progress)")
    report.write()


def _finished(progress_json: dict[str, Any]) -> int:
    counts = progress_json["batch"]["counts"]
    return sum(int(counts.get(k, 0)) for k in ("done", "failed", "skipped", "cancelled"))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
