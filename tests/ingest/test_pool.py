"""The process pool, with real child processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from ledger.errors import PermanentError, RetryableError
from ledger.worker.child_memory import ChildMemory, NotYet, reap_with_usage
from ledger.worker.pool import PoolClosed, ProcessPool
from tests.ingest import pool_tasks

pytestmark = pytest.mark.timeout(60)

MiB = 2**20


def _children_of_me() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def _assert_gone(pids: list[int]) -> None:
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


async def test_returns_results_and_reuses_children() -> None:
    async with ProcessPool(2) as pool:
        assert await pool.run(pool_tasks.add, 2, 3) == 5
        pids = {await pool.run(pool_tasks.pid) for _ in range(6)}
        assert os.getpid() not in pids
        assert 1 <= len(pids) <= 2  # long-lived children serve many tasks
        big = os.urandom(3 * MiB)
        assert await pool.run(pool_tasks.echo_bytes, big) == big[::-1]


async def test_processing_errors_round_trip_with_their_class_and_fields() -> None:
    async with ProcessPool(1) as pool:
        with pytest.raises(PermanentError) as permanent:
            await pool.run(pool_tasks.fail_permanent, "corrupt", "bad xref table")
        assert type(permanent.value) is PermanentError
        assert permanent.value.code == "corrupt"
        assert permanent.value.message == "bad xref table"
        assert any("fail_permanent" in note for note in permanent.value.__notes__)

        with pytest.raises(RetryableError) as retryable:
            await pool.run(pool_tasks.fail_retryable, "http_503", 7.5)
        assert retryable.value.code == "http_503"
        assert retryable.value.retry_after == 7.5
        assert retryable.value.systemic is False

        with pytest.raises(ValueError, match="plain failure"):
            await pool.run(pool_tasks.fail_value_error, "plain failure")

        with pytest.raises(RuntimeError, match="could not be pickled"):
            await pool.run(pool_tasks.unpicklable_result)
        # None of these broke the child.
        assert await pool.run(pool_tasks.add, 1, 1) == 2


async def test_unpicklable_function_fails_in_the_caller() -> None:
    async with ProcessPool(1) as pool:
        with pytest.raises(AttributeError, match="pickle"):
            await pool.run(lambda: 1)
        assert pool.child_pids() == []  # refused before a child was started
        assert await pool.run(pool_tasks.add, 1, 2) == 3


async def test_timeout_kills_the_child_and_the_pool_goes_on() -> None:
    async with ProcessPool(1) as pool:
        first = await pool.run(pool_tasks.pid)
        started = time.monotonic()
        with pytest.raises(PermanentError) as info:
            await pool.run(pool_tasks.sleep, 30, timeout=0.5)
        assert time.monotonic() - started < 5
        assert info.value.code == "timeout"
        assert "0.5 s" in info.value.message
        await asyncio.sleep(0.2)
        assert not psutil.pid_exists(first) or psutil.Process(first).status() == "zombie"
        second = await pool.run(pool_tasks.pid)
        assert second != first
        assert await pool.run(pool_tasks.sleep, 0.01, timeout=10) == "slept"


async def test_memory_error_in_child_is_too_large() -> None:
    async with ProcessPool(1, memory_limit_bytes=512 * MiB) as pool:
        before = await pool.run(pool_tasks.pid)
        with pytest.raises(PermanentError) as info:
            await pool.run(pool_tasks.hog_python, 2048 * MiB, timeout=30)
        assert info.value.code == "too_large"
        # The child that ran out of memory is replaced.
        assert await pool.run(pool_tasks.pid) != before
        assert await pool.run(pool_tasks.hog_python, 16 * MiB) == 16 * MiB


async def test_child_dying_near_the_memory_limit_is_too_large() -> None:
    async with ProcessPool(1, memory_limit_bytes=768 * MiB) as pool:
        with pytest.raises(PermanentError) as info:
            await pool.run(pool_tasks.hog_gradually, 16 * MiB, 200, timeout=30)
        assert info.value.code == "too_large"
        assert "SIGABRT" in info.value.message
        assert await pool.run(pool_tasks.add, 2, 2) == 4


@pytest.mark.parametrize(
    ("parent_mib", "hold"),
    [
        # The kernel's peak RSS of the child tells (the parent is small).
        (0, 0.0),
        # The parent is bigger than the child ever gets: only the pool's sampling thread,
        # which runs while the event loop is blocked, sees the child grow.
        (700, 2.0),
    ],
)
def test_a_child_dying_of_the_limit_while_the_loop_is_blocked_is_too_large(
    parent_mib: int, hold: float
) -> None:
    """The parent's event loop is blocked from the moment the task is sent until the child
    is dead, so nothing of the loop watches the child. The pool runs in a process of its own,
    of a known size."""
    script = textwrap.dedent(
        """
        import asyncio, os, sys, time
        from ledger.errors import LedgerError
        from ledger.worker.pool import ProcessPool
        from tests.ingest import pool_tasks

        MiB = 2**20
        ballast = b"p" * (int(sys.argv[1]) * MiB)

        def block_until_dead(pid):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                    return
                time.sleep(0.01)
            sys.exit("the task never reached the child")

        async def main():
            async with ProcessPool(1, memory_limit_bytes=1024 * MiB) as pool:
                child = await pool.run(pool_tasks.pid)
                task = asyncio.create_task(
                    pool.run(pool_tasks.grow_then_abort, 400 * MiB, float(sys.argv[2]))
                )
                await asyncio.sleep(0)  # the task is sent
                block_until_dead(child)
                try:
                    await task
                except LedgerError as exc:
                    print(exc.code, exc.message)

        asyncio.run(main())
        """
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run(
        [sys.executable, "-c", script, str(parent_mib), str(hold)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    code, _, message = done.stdout.strip().partition(" ")
    assert code == "too_large", message
    assert "SIGABRT" in message


def test_the_kernel_peak_of_a_reaped_child_is_its_own() -> None:
    """``reap_with_usage`` reaps with the child's peak RSS and tells multiprocessing the exit
    code; the figure counts as the child's own only above the parent's peak at its start."""
    process = multiprocessing.get_context("spawn").Process(
        target=pool_tasks.grow_then_exit, args=(300 * MiB,)
    )
    process.start()
    memory = ChildMemory.of_new_child(1024 * MiB)
    multiprocessing.connection.wait([process.sentinel], timeout=60)  # exited, not reaped
    reaped = None
    for _ in range(1000):
        reaped = reap_with_usage(process)
        if not isinstance(reaped, NotYet):
            break
        time.sleep(0.01)
    assert isinstance(reaped, tuple)
    exitcode, rss_peak = reaped
    assert exitcode == 7 == process.exitcode
    assert rss_peak >= 300 * MiB
    memory.rss_peak = rss_peak
    assert memory.own_rss_peak() == (rss_peak if rss_peak > memory.inherited_rss else 0)
    memory.inherited_rss = rss_peak  # a parent at least as big: the figure says nothing
    assert memory.own_rss_peak() == 0 and not memory.died_of_limit()


@pytest.mark.parametrize(
    ("task", "args", "expected"),
    [
        (pool_tasks.exit_hard, (3,), "exited with status 3"),
        (pool_tasks.segfault, (), "SIGSEGV"),
        (pool_tasks.kill_self, (signal.SIGKILL,), "SIGKILL"),
    ],
)
async def test_child_death_is_worker_crashed_and_replaced(task, args, expected) -> None:  # type: ignore[no-untyped-def]
    async with ProcessPool(1, memory_limit_bytes=1024 * MiB) as pool:
        before = await pool.run(pool_tasks.pid)
        with pytest.raises(RetryableError) as info:
            await pool.run(task, *args, timeout=30)
        assert info.value.code == "worker_crashed"
        assert info.value.systemic is False
        assert expected in info.value.message
        after = await pool.run(pool_tasks.pid)
        assert after != before


async def test_child_killed_while_idle_does_not_fail_the_next_task() -> None:
    async with ProcessPool(1) as pool:
        victim = await pool.run(pool_tasks.pid)
        os.kill(victim, signal.SIGKILL)
        await asyncio.sleep(0.2)
        assert await pool.run(pool_tasks.add, 4, 5) == 9


async def test_cancellation_kills_the_child_and_reraises() -> None:
    async with ProcessPool(1) as pool:
        victim = await pool.run(pool_tasks.pid)
        task = asyncio.create_task(pool.run(pool_tasks.sleep, 30))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.3)
        assert not psutil.pid_exists(victim)
        assert await pool.run(pool_tasks.add, 1, 2) == 3


async def test_concurrency_is_bounded_and_really_parallel() -> None:
    async with ProcessPool(2) as pool:
        await asyncio.gather(pool.run(pool_tasks.pid), pool.run(pool_tasks.pid))  # warm up
        spans = await asyncio.gather(*(pool.run(pool_tasks.spin, 0.6) for _ in range(4)))
    spans.sort()
    # Two at a time: the first two overlap each other ...
    assert spans[0][0] < spans[1][1]
    assert spans[1][0] < spans[0][1]
    # ... and a third never starts before one of the first two has finished.
    for third in spans[2:]:
        running = [s for s in spans if s is not third and s[0] < third[0] < s[1]]
        assert len(running) <= 1


async def test_close_leaves_no_children_and_rejects_new_work() -> None:
    pool = ProcessPool(2)
    await asyncio.gather(pool.run(pool_tasks.sleep, 0.1), pool.run(pool_tasks.sleep, 0.1))
    pids = pool.child_pids()
    assert len(pids) == 2
    busy = asyncio.create_task(pool.run(pool_tasks.ignore_term_and_sleep, 30))
    await asyncio.sleep(0.3)
    await pool.close()
    with pytest.raises(PoolClosed):
        await busy
    _assert_gone(pids)
    assert _children_of_me() & set(pids) == set()
    with pytest.raises(PoolClosed):
        await pool.run(pool_tasks.add, 1, 1)
    await pool.close()  # idempotent


async def test_retires_children_after_max_tasks() -> None:
    async with ProcessPool(1, max_tasks_per_child=2) as pool:
        pids = [await pool.run(pool_tasks.pid) for _ in range(4)]
    assert pids[0] == pids[1] != pids[2] == pids[3]


async def test_memory_limit_applies_in_the_child_only() -> None:
    async with ProcessPool(1, memory_limit_bytes=600 * MiB) as pool:
        assert await pool.run(pool_tasks.parent_pid) == os.getpid()
    # The parent is not limited by the children's rlimit.
    assert len(bytearray(700 * MiB)) == 700 * MiB


def test_children_die_when_the_parent_is_killed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = textwrap.dedent(
        """
        import asyncio, sys
        from ledger.worker.pool import ProcessPool
        from tests.ingest import pool_tasks

        async def main():
            pool = ProcessPool(2)
            await asyncio.gather(*(pool.run(pool_tasks.pid) for _ in range(2)))
            print(*pool.child_pids(), flush=True)
            await pool.run(pool_tasks.sleep, 60)

        asyncio.run(main())
        """
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
        assert all(psutil.pid_exists(p) for p in pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        assert not any(_alive(p) for p in pids)
    finally:
        parent.kill()
        parent.wait()


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
