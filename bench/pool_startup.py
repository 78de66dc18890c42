"""How long a worker child takes to start: spawn versus forkserver.

Run: python bench/pool_startup.py [rounds]

Measures (1) start-to-exit of a bare child and (2) start until the child has imported the
ingest pipeline (what the first ingest task pays), for each start method. The forkserver
preloads the pipeline, as a pool built on it would.
"""

from __future__ import annotations

import multiprocessing
import statistics
import sys
import time


def noop() -> None:
    pass


def import_pipeline() -> None:
    import ledger.processors.ingest.pipeline  # noqa: F401


def measure(method: str, target: object, rounds: int) -> list[float]:
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["ledger.processors.ingest.pipeline"])
        warm = context.Process(target=noop)  # starts the server itself
        warm.start()
        warm.join()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        process = context.Process(target=target)  # type: ignore[arg-type]
        process.start()
        process.join()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    print("| start method | bare child (ms, median) | child with pipeline imported (ms, median) |")
    print("| --- | --- | --- |")
    for method in ("spawn", "forkserver"):
        bare = statistics.median(measure(method, noop, rounds)) * 1000
        loaded = statistics.median(measure(method, import_pipeline, rounds)) * 1000
        print(f"| {method} | {bare:.0f} | {loaded:.0f} |")


if __name__ == "__main__":
    main()
