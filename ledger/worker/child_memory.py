"""How much memory a pool child's task took: what tells a task that died of the memory limit
from one that crashed.

C libraries abort when malloc fails under ``RLIMIT_AS``, so a child that ran out of memory in C
code (PDFium inflating a bomb) dies of SIGABRT without a word. Two witnesses say why:

- the kernel's peak RSS of the child, read when the pool reaps it (``wait4``). It is exact
  and needs no luck, but it counts the image of the process that started the child as well
  (the spawned child's address space began as a copy of it), so it speaks only when it is
  above the parent's own peak at the child's start, and only for peaks reached in this task;
- samples of the child's address space taken while the task runs, by a thread of the pool's
  own (an event loop busy with other work would miss them); they back the kernel's figure up
  where it cannot speak (the parent bigger than the child, or no ``wait4``).

Each witness has its figure at the task's start taken before the task is sent, so neither
depends on when the sampler first runs.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import psutil

SAMPLE_INTERVAL: Final = 0.05  # seconds between samples of a busy child's memory
# A child that dies after its memory grew by this share of the limit during its task (or whose
# address space came within 10 % of it) is taken to have died of the limit.
GROWTH_SHARE: Final = 0.25
NEAR_LIMIT_SHARE: Final = 0.9

_LINUX: Final = sys.platform.startswith("linux")


@dataclass(eq=False)
class ChildMemory:
    """One child's memory figures: its start, the task in progress, and how it ended."""

    limit: int
    inherited_rss: int = 0  # the parent's peak RSS once the child had started
    rss_start: int = 0  # the child's RSS and peak RSS when the task was sent
    hwm_start: int = 0
    rss_peak: int = 0  # the kernel's peak RSS of the child, once reaped with wait4
    vms_start: int = 0
    vms_peak: int = 0
    _process: psutil.Process | None = field(default=None, repr=False)

    @classmethod
    def of_new_child(cls, limit: int) -> ChildMemory:
        """Figures for a child just started by this process."""
        return cls(limit=limit, inherited_rss=_status_bytes("self").get("VmHWM", 0))

    def task_sent(self, pid: int) -> None:
        """Take the child's figures just before it gets a task (it is idle: they are its
        baseline)."""
        self.rss_peak = 0
        status = _status_bytes(str(pid))
        self.rss_start = status.get("VmRSS", 0)
        self.hwm_start = status.get("VmHWM", 0)
        self.vms_start = self.vms_peak = self._vms(pid) or 0

    def sample(self, pid: int) -> None:
        vms = self._vms(pid)
        if vms is not None:
            self.vms_peak = max(self.vms_peak, vms)

    def died_of_limit(self) -> bool:
        """Whether the child, dead mid-task, had used up its memory limit."""
        growth_bar = GROWTH_SHARE * self.limit
        if self.own_rss_peak() - self.rss_start >= growth_bar:
            return True
        return (
            self.vms_peak >= NEAR_LIMIT_SHARE * self.limit
            or self.vms_peak - self.vms_start >= growth_bar
        )

    def own_rss_peak(self) -> int:
        """The child's peak RSS in this task, or 0 when the kernel's figure cannot tell."""
        if self.rss_peak > max(self.inherited_rss, self.hwm_start):
            return self.rss_peak
        return 0

    def peak(self) -> int:
        return max(self.own_rss_peak(), self.vms_peak)

    def _vms(self, pid: int) -> int | None:
        # psutil is imported on first use: a worker whose processors never use a child
        # process does not load it.
        import psutil

        try:
            if self._process is None:
                self._process = psutil.Process(pid)
            return int(self._process.memory_info().vms)
        except psutil.Error:
            return None


class MemorySampler:
    """A thread that samples the busy children's memory every ``SAMPLE_INTERVAL`` seconds.

    A thread rather than a task of the event loop: a loop kept busy by other work (a big
    finish, a slow callback) would take no sample while a child grew and died.
    """

    def __init__(self) -> None:
        self._watched: dict[int, ChildMemory] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, pid: int, memory: ChildMemory) -> None:
        with self._lock:
            self._watched[pid] = memory
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="ledger-pool-memory", daemon=True
                )
                self._thread.start()

    def unwatch(self, pid: int) -> None:
        with self._lock:
            self._watched.pop(pid, None)

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            with self._lock:
                watched = list(self._watched.items())
            for pid, memory in watched:
                memory.sample(pid)


class NotYet:
    """``reap_with_usage`` found the child not reapable yet."""


NOT_YET: Final = NotYet()


def reap_with_usage(process: BaseProcess) -> tuple[int, int] | NotYet | None:
    """Reap the exited child ``process`` with ``wait4``: its exit code and peak RSS in bytes.

    ``NOT_YET`` while it cannot be reaped yet; ``None`` where this cannot be done (not Linux,
    or already reaped): the caller then reads ``process.exitcode``. multiprocessing reaps with
    ``waitpid``, which throws the usage away; after reaping here its ``Popen`` is given the
    exit code, so it never waits on a process id that may have been reused since.
    """
    popen = getattr(process, "_popen", None)
    pid = process.pid
    if not _LINUX or popen is None or pid is None or popen.returncode is not None:
        return None
    try:
        reaped, status, usage = os.wait4(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if reaped != pid:
        return NOT_YET
    exitcode = os.waitstatus_to_exitcode(status)
    popen.returncode = exitcode
    return exitcode, usage.ru_maxrss * 1024  # Linux counts it in KiB


def _status_bytes(pid: str) -> dict[str, int]:
    """The ``Vm*`` lines of ``/proc/<pid>/status`` in bytes (empty where there is no /proc)."""
    if not _LINUX:
        return {}
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"Vm"):
                    name, _, value = line.partition(b":")
                    found[name.decode()] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return {}
    return found
