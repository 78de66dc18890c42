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
import multiprocessing
import os
import pickle
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any, Final, TypeVar, cast

from ledger.errors import LedgerError, PermanentError, RetryableError
from ledger.states import ErrorCode
from ledger.worker.child_memory import ChildMemory, MemorySampler, NotYet, reap_with_usage
from ledger.worker.pool_child import FRAME_HEADER, child_main

T = TypeVar("T")

START_METHOD: Final = "spawn"

_RETIRE_GRACE = 2.0  # seconds a retired child gets to exit on its own before SIGKILL
_REAP_TIMEOUT = 5.0  # seconds to wait for a killed child to be gone


class PoolClosed(LedgerError):
    """The process pool is closed."""


@dataclass(eq=False)
class _Child:
    process: BaseProcess
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    memory: ChildMemory | None  # None without a memory limit
    tasks: int = 0
    gone: bool = False  # killed or retired; its reaping is under way


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
        self._queued = 0  # callers of run() waiting for a slot
        self._reapers: set[asyncio.Task[None]] = set()
        self._closed = False
        self._sampler = MemorySampler()
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

    @property
    def queued(self) -> int:
        """Tasks waiting for a child: work given now would wait behind them."""
        return self._queued

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
        self._queued += 1
        try:
            child = await self._slots.get()
        finally:
            self._queued -= 1
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
        self._sampler.close()

    # -- child lifecycle -------------------------------------------------------------------

    async def _spawn(self) -> _Child:
        parent_sock, child_sock = socket.socketpair()
        process = self._context.Process(
            target=child_main,
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
        limit = self.memory_limit_bytes
        memory = None if limit is None else ChildMemory.of_new_child(limit)
        child = _Child(process=process, reader=reader, writer=writer, memory=memory)
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
        pid = child.process.pid or 0
        memory = child.memory if pid else None
        if memory is not None:
            memory.task_sent(pid)
            self._sampler.watch(pid, memory)
        try:
            try:
                async with asyncio.timeout(time_limit):
                    child.writer.write(FRAME_HEADER.pack(len(payload)))
                    child.writer.write(payload)
                    await child.writer.drain()
                    (size,) = FRAME_HEADER.unpack(await child.reader.readexactly(8))
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
                if memory is not None:  # no sample of a process id that may be reused
                    self._sampler.unwatch(pid)
                exitcode = await _wait_death(child)
                raise self._death_error(child, exitcode) from exc
        finally:
            if memory is not None:
                self._sampler.unwatch(pid)
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
        memory = child.memory
        if memory is not None and memory.died_of_limit():
            return PermanentError(
                ErrorCode.TOO_LARGE,
                f"the worker process {how} after its memory grew to "
                f"{memory.peak() / 2**20:.0f} MiB (limit {memory.limit / 2**20:.0f} MiB)",
            )
        return RetryableError(ErrorCode.WORKER_CRASHED, f"the worker process {how}", systemic=False)


async def _wait_death(child: _Child) -> int | None:
    """Wait until a child that died mid-task is gone; reap it with its peak RSS if possible."""
    process = child.process
    await _wait_sentinel(process, _REAP_TIMEOUT)
    for _ in range(200):
        reaped = reap_with_usage(process)
        if reaped is None:
            return await _wait_exit(process, _REAP_TIMEOUT)
        if not isinstance(reaped, NotYet):
            exitcode, rss_peak = reaped
            if child.memory is not None:
                child.memory.rss_peak = rss_peak
            return exitcode
        await asyncio.sleep(0.005)
    return process.exitcode


async def _wait_exit(process: BaseProcess, wait: float) -> int | None:
    """Wait without blocking the loop until ``process`` has exited; return its exit code."""
    if process.exitcode is not None:
        return process.exitcode
    if await _wait_sentinel(process, wait):
        # The sentinel closes while the child exits, a moment before it can be reaped.
        for _ in range(200):
            if process.exitcode is not None:
                break
            await asyncio.sleep(0.005)
    return process.exitcode


async def _wait_sentinel(process: BaseProcess, wait: float) -> bool:
    """Wait up to ``wait`` seconds for ``process``'s sentinel; whether it closed (it exited)."""
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(process.sentinel, on_exit)
    try:
        async with asyncio.timeout(wait):
            await exited
    except TimeoutError:
        pass
    finally:
        loop.remove_reader(process.sentinel)
    return exited.done()


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
