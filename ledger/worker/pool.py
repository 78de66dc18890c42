"""A process pool for CPU-bound work, with a wall-clock timeout per task and a memory limit
per child process.

Why not ``concurrent.futures.ProcessPoolExecutor``: it cannot kill one task that hangs (a
timeout leaves the process busy forever), a child that dies breaks the whole executor, and it
has no memory limit. Here every child is a long-lived process of its own, talking to the
parent over a socket pair, so one child can be killed and replaced while the others work on.

Guarantees:

- At most ``workers`` tasks run at once; further calls wait their turn in arrival order.
- A task that exceeds its ``timeout`` has its child killed (SIGKILL) and replaced, and the
  caller gets ``PermanentError("timeout")``.
- A child runs under ``RLIMIT_AS`` when ``memory_limit_bytes`` is set. A ``MemoryError`` in
  the task, or the child dying after its memory grew close to the limit, gives
  ``PermanentError("too_large")``; the child is replaced.
- A child that dies for any other reason (segfault, killed by someone, ``os._exit``) gives
  ``RetryableError("worker_crashed", systemic=False)``; the child is replaced.
- Cancelling the awaiting coroutine kills that task's child, replaces it, and re-raises.
- Children die with the parent: ``PR_SET_PDEATHSIG`` on Linux, plus a lifeline pipe whose
  end-of-file (the parent is gone) makes a child exit even in the middle of a task.

Children are started with the ``spawn`` method, never ``fork``: the parent runs an event loop
and threads, which ``fork`` would copy in an undefined state. ``spawn`` rather than
``forkserver`` because the children are direct children of this process, so the parent-death
signal and the exit status refer to the process that matters. A child costs one interpreter
start (about 50 ms; 0.3 s once it has imported the ingest libraries, see docs/ingest.md) and
then serves up to ``max_tasks_per_child`` tasks.

``run`` passes positional arguments only: bind keyword arguments with ``functools.partial``.
As with any ``spawn`` child, a script that creates a pool needs an
``if __name__ == "__main__":`` guard. The pool must be used from one event loop, in the thread
that runs it: on Linux the parent-death signal fires when the thread that started a child
ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import pickle
import resource
import signal
import socket
import struct
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from ledger.errors import LedgerError, PermanentError, RetryableError
from ledger.states import ErrorCode

if TYPE_CHECKING:
    import psutil

T = TypeVar("T")

START_METHOD: Final = "spawn"

_FRAME_HEADER = struct.Struct("!Q")  # length of the pickled payload that follows
_MEMORY_SAMPLE_INTERVAL = 0.05  # seconds between samples of a busy child's memory
# A child that dies after its address space grew by this share of the limit (or came within
# 10 % of it) is taken to have died of the limit: C libraries abort when malloc fails.
_MEMORY_GROWTH_SHARE = 0.25
_MEMORY_NEAR_LIMIT_SHARE = 0.9
_RETIRE_GRACE = 2.0  # seconds a retired child gets to exit on its own before SIGKILL
_REAP_TIMEOUT = 5.0  # seconds to wait for a killed child to be gone
_PR_SET_PDEATHSIG = 1


class PoolClosed(LedgerError):
    """The process pool is closed."""


@dataclass(eq=False)
class _Child:
    process: BaseProcess
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    tasks: int = 0
    vms_start: int = 0
    vms_peak: int = 0
    gone: bool = False  # killed or retired; its reaping is under way
    psutil_process: psutil.Process | None = field(default=None, repr=False)


class ProcessPool:
    """Runs picklable module-level functions in child processes, ``workers`` at a time."""

    def __init__(
        self,
        workers: int,
        *,
        memory_limit_bytes: int | None = None,
        max_tasks_per_child: int | None = 500,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if memory_limit_bytes is not None and memory_limit_bytes <= 0:
            raise ValueError("memory_limit_bytes must be positive")
        if max_tasks_per_child is not None and max_tasks_per_child < 1:
            raise ValueError("max_tasks_per_child must be at least 1")
        self.workers = workers
        self.memory_limit_bytes = memory_limit_bytes
        self.max_tasks_per_child = max_tasks_per_child
        self._context = multiprocessing.get_context(START_METHOD)
        # A slot is a started child or None (start one when the slot is taken). The queue
        # hands out slots in arrival order, which is what bounds the concurrency.
        self._slots: asyncio.Queue[_Child | None] = asyncio.Queue()
        for _ in range(workers):
            self._slots.put_nowait(None)
        self._children: set[_Child] = set()
        self._busy: set[_Child] = set()
        self._reapers: set[asyncio.Task[None]] = set()
        self._closed = False
        # The children hold the read end; the parent never writes. When the parent process
        # ends, for whatever reason, the read end sees end-of-file and the children exit.
        self._lifeline_read, self._lifeline_write = self._context.Pipe(duplex=False)

    async def __aenter__(self) -> ProcessPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def child_pids(self) -> list[int]:
        """The process ids of the children alive now (for monitoring and tests)."""
        return [c.process.pid for c in self._children if c.process.pid is not None]

    # The timeout is part of the task (it kills the child), not just a bound on the wait.
    async def run(
        self,
        fn: Callable[..., T],
        /,
        *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> T:
        """Run ``fn(*args)`` in a child process and return its result or raise its exception.

        ``fn`` and ``args`` must be picklable (a module-level function of an importable
        module); the result and the exception must be picklable too. Raises
        ``PermanentError("timeout")``, ``PermanentError("too_large")``,
        ``RetryableError("worker_crashed")`` or ``PoolClosed`` as described in the module
        docstring.
        """
        if self._closed:
            raise PoolClosed()
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive")
        # Pickle in the caller, so a lambda or an unpicklable argument fails here, plainly.
        payload = pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
        child = await self._slots.get()
        keep = False
        try:
            if self._closed:
                raise PoolClosed()
            if child is not None and not child.process.is_alive():
                # Died while idle (killed from outside): do not blame the next task for it.
                self._discard(child)
                child = None
            if child is None:
                child = await self._spawn()
            self._busy.add(child)
            outcome = await self._exchange(child, payload, timeout)
            keep = outcome[0] != "oom"
            child.tasks += 1
        finally:
            if child is not None:
                self._busy.discard(child)
                if not keep:
                    self._discard(child)
                    child = None
                elif self._closed or (
                    self.max_tasks_per_child is not None and child.tasks >= self.max_tasks_per_child
                ):
                    self._retire(child)
                    child = None
            self._slots.put_nowait(child)
        return cast(T, self._unwrap(outcome))

    async def close(self) -> None:
        """Stop every child and wait until all are gone. Idempotent.

        Idle children are asked to exit; children busy with a task are killed, and the
        callers awaiting those tasks get ``PoolClosed``.
        """
        self._closed = True
        for child in list(self._children):
            if child in self._busy:
                self._discard(child)
            else:
                self._retire(child)
        while self._reapers:
            await asyncio.gather(*list(self._reapers), return_exceptions=True)
        self._lifeline_write.close()
        self._lifeline_read.close()

    # -- child lifecycle -------------------------------------------------------------------

    async def _spawn(self) -> _Child:
        parent_sock, child_sock = socket.socketpair()
        process = self._context.Process(
            target=_child_main,
            args=(child_sock, self._lifeline_read, os.getpid(), self.memory_limit_bytes),
            name="ledger-pool-worker",
            # Daemonic: multiprocessing's exit handler kills it should close() never run.
            daemon=True,
        )
        try:
            process.start()
        except BaseException:
            parent_sock.close()
            raise
        finally:
            child_sock.close()
        try:
            reader, writer = await asyncio.open_unix_connection(sock=parent_sock)
        except BaseException:
            parent_sock.close()
            process.kill()
            process.join()
            process.close()
            raise
        child = _Child(process=process, reader=reader, writer=writer)
        self._children.add(child)
        return child

    def _discard(self, child: _Child) -> None:
        """Kill a child now (SIGKILL) and reap it in the background."""
        if not child.gone:
            with contextlib.suppress(ProcessLookupError):
                child.process.kill()
        self._reap_later(child, grace=0.0)

    def _retire(self, child: _Child) -> None:
        """Let an idle child exit on its own (end-of-file on its socket), then reap it."""
        self._reap_later(child, grace=_RETIRE_GRACE)

    def _reap_later(self, child: _Child, *, grace: float) -> None:
        if child.gone:
            return
        child.gone = True
        self._children.discard(child)
        task = asyncio.get_running_loop().create_task(self._reap(child, grace))
        self._reapers.add(task)
        task.add_done_callback(self._reapers.discard)

    async def _reap(self, child: _Child, grace: float) -> None:
        child.writer.close()
        process = child.process
        try:
            if grace > 0:
                await _wait_exit(process, grace)
            if process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await _wait_exit(process, _REAP_TIMEOUT)
        finally:
            if process.exitcode is not None:
                process.close()

    # -- one task --------------------------------------------------------------------------

    async def _exchange(
        self, child: _Child, payload: bytes, time_limit: float | None
    ) -> tuple[Any, ...]:
        sampler = None
        if self.memory_limit_bytes is not None:
            sampler = asyncio.get_running_loop().create_task(self._sample_memory(child))
        try:
            try:
                async with asyncio.timeout(time_limit):
                    child.writer.write(_FRAME_HEADER.pack(len(payload)))
                    child.writer.write(payload)
                    await child.writer.drain()
                    (size,) = _FRAME_HEADER.unpack(await child.reader.readexactly(8))
                    data = await child.reader.readexactly(size)
            except TimeoutError:
                if self._closed:
                    raise PoolClosed("the pool was closed while the task ran") from None
                raise PermanentError(
                    ErrorCode.TIMEOUT,
                    f"the task took longer than {time_limit:g} s; its worker process was killed",
                ) from None
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                if self._closed:  # close() killed it and is reaping it
                    raise PoolClosed("the pool was closed while the task ran") from exc
                exitcode = await _wait_exit(child.process, _REAP_TIMEOUT)
                raise self._death_error(child, exitcode) from exc
        finally:
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
        outcome = pickle.loads(data)
        assert isinstance(outcome, tuple)
        return outcome

    def _unwrap(self, outcome: tuple[Any, ...]) -> Any:
        kind = outcome[0]
        if kind == "ok":
            return outcome[1]
        if kind == "oom":
            limit = self.memory_limit_bytes
            where = f" (limit {limit / 2**20:.0f} MiB)" if limit else ""
            raise PermanentError(ErrorCode.TOO_LARGE, f"the task ran out of memory{where}")
        error: BaseException = outcome[1]
        error.add_note(f"Traceback in the worker process:\n{outcome[2]}")
        raise error

    def _death_error(self, child: _Child, exitcode: int | None) -> LedgerError:
        if self._closed:
            return PoolClosed("the pool was closed while the task ran")
        how = _describe_exit(exitcode)
        limit = self.memory_limit_bytes
        if limit is not None and (
            child.vms_peak >= _MEMORY_NEAR_LIMIT_SHARE * limit
            or child.vms_peak - child.vms_start >= _MEMORY_GROWTH_SHARE * limit
        ):
            return PermanentError(
                ErrorCode.TOO_LARGE,
                f"the worker process {how} after its memory grew to "
                f"{child.vms_peak / 2**20:.0f} MiB (limit {limit / 2**20:.0f} MiB)",
            )
        return RetryableError(ErrorCode.WORKER_CRASHED, f"the worker process {how}", systemic=False)

    async def _sample_memory(self, child: _Child) -> None:
        # C libraries abort when malloc fails under RLIMIT_AS, so the child cannot tell us
        # it ran out of memory; its size just before it died can. psutil is imported on first
        # use: a worker whose processors never use a child process does not load it.
        import psutil

        child.vms_start = child.vms_peak = 0
        try:
            if child.psutil_process is None:
                child.psutil_process = psutil.Process(child.process.pid)
            proc = child.psutil_process
            child.vms_start = child.vms_peak = proc.memory_info().vms
            while True:
                await asyncio.sleep(_MEMORY_SAMPLE_INTERVAL)
                child.vms_peak = max(child.vms_peak, proc.memory_info().vms)
        except psutil.Error:
            return


async def _wait_exit(process: BaseProcess, wait: float) -> int | None:
    """Wait without blocking the loop until ``process`` has exited; return its exit code."""
    if process.exitcode is not None:
        return process.exitcode
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    sentinel = process.sentinel
    loop.add_reader(sentinel, on_exit)
    try:
        async with asyncio.timeout(wait):
            await exited
    except TimeoutError:
        pass
    finally:
        loop.remove_reader(sentinel)
    # The sentinel closes while the child exits, a moment before it can be reaped.
    for _ in range(200):
        if process.exitcode is not None or not exited.done():
            break
        await asyncio.sleep(0.005)
    return process.exitcode


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name}"
    return f"exited with status {exitcode}"


# -- the child side --------------------------------------------------------------------------


def _child_main(
    sock: socket.socket, lifeline: Connection, parent_pid: int, memory_limit: int | None
) -> None:
    """Serve tasks until the parent closes the socket."""
    _die_with_parent(parent_pid, lifeline)
    # Ctrl-C reaches the whole process group; the parent decides what happens to tasks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if memory_limit is not None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            memory_limit = min(memory_limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, hard))
    with sock:
        while True:
            payload = _recv_frame(sock)
            if payload is None:
                return
            _send_frame(sock, _run_task(payload))


def _run_task(payload: bytes) -> bytes:
    try:
        fn, args = pickle.loads(payload)
        outcome: tuple[Any, ...] = ("ok", fn(*args))
    except MemoryError:
        outcome = ("oom",)
    except BaseException as exc:  # every failure goes back to the caller
        outcome = ("err", exc, traceback.format_exc())
    try:
        return pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    except MemoryError:
        return pickle.dumps(("oom",))
    except Exception as exc:  # an unpicklable result or exception
        summary = repr(outcome[1]) if len(outcome) > 1 else ""
        error = RuntimeError(f"the task's outcome could not be pickled: {exc!r}: {summary[:500]}")
        return pickle.dumps(("err", error, traceback.format_exc()))


def _recv_frame(sock: socket.socket) -> bytes | None:
    header = _recv_exactly(sock, _FRAME_HEADER.size)
    if header is None:
        return None
    (size,) = _FRAME_HEADER.unpack(header)
    return _recv_exactly(sock, size)


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        n = sock.recv_into(view[received:])
        if n == 0:
            return None
        received += n
    return bytes(buffer)


def _send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_FRAME_HEADER.pack(len(payload)))
    sock.sendall(payload)


def _die_with_parent(parent_pid: int, lifeline: Connection) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
    fd = lifeline.fileno()

    def watch() -> None:
        # The parent never writes: a read returns only at end-of-file, when it is gone.
        with contextlib.suppress(OSError):
            while os.read(fd, 1):
                pass
        os._exit(1)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()
