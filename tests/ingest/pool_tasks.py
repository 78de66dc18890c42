"""Module-level functions for the process pool tests (children import them by name)."""

from __future__ import annotations

import ctypes
import os
import signal
import time
from typing import TYPE_CHECKING

from ledger.errors import PermanentError, RetryableError

if TYPE_CHECKING:
    from ledger.processors.ingest import IngestOutcome


def add(a: int, b: int) -> int:
    return a + b


def pid() -> int:
    return os.getpid()


def echo_bytes(data: bytes) -> bytes:
    return data[::-1]


def fail_permanent(code: str, message: str) -> None:
    raise PermanentError(code, message)


def fail_retryable(code: str, retry_after: float) -> None:
    raise RetryableError(code, "try later", retry_after=retry_after, systemic=False)


def fail_value_error(message: str) -> None:
    raise ValueError(message)


def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


def spin(seconds: float) -> tuple[float, float]:
    """Burn CPU for ``seconds``; return the (monotonic, system-wide) start and end times."""
    start = time.monotonic()
    x = 0
    while time.monotonic() - start < seconds:
        for i in range(10_000):
            x += i * i
    return start, time.monotonic()


def hog_python(n_bytes: int) -> int:
    data = bytearray(n_bytes)  # raises MemoryError under the limit
    return len(data)


def hog_gradually(step: int, steps: int) -> int:
    """Grow memory in steps and then die the way C code does when malloc fails: abort."""
    held = []
    for _ in range(steps):
        try:
            held.append(b"x" * step)
        except MemoryError:
            os.abort()
        time.sleep(0.01)
    return len(held)


def exit_hard(status: int) -> None:
    os._exit(status)


def segfault() -> None:
    ctypes.string_at(0)


def kill_self(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(10)


def unpicklable_result() -> object:
    return lambda: None


def parent_pid() -> int:
    return os.getppid()


def ignore_term_and_sleep(seconds: float) -> str:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)
    return "done"


def process_and_peak_rss(path: str, spool_dir: str) -> tuple[IngestOutcome, int]:
    """``process_file`` with default options, and this child's peak resident memory (bytes).

    VmHWM, not ru_maxrss: the latter keeps the parent's size from before the exec of a
    spawned child.
    """
    from ledger.processors.ingest import IngestOptions, process_file

    outcome = process_file(
        path,
        expected_size=None,
        expected_mtime_ns=None,
        expected_sha256=None,
        options=IngestOptions(),
        spool_dir=spool_dir,
    )
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return outcome, int(line.split()[1]) * 1024


def grow_then_abort(n_bytes: int, hold: float = 0.0) -> None:
    """Touch ``n_bytes``, keep them ``hold`` seconds, and abort, as C code does when its next
    malloc fails."""
    held = b"x" * n_bytes
    time.sleep(hold)
    assert held
    os.abort()


def grow_then_exit(n_bytes: int) -> None:
    held = b"x" * n_bytes
    assert held
    os._exit(7)
