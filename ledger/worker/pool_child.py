"""The child side of the process pool: serve pickled tasks from the parent over a socket.

A child sets its memory limit, ties its life to the parent's, and answers each framed task with
its framed outcome: ``("ok", result)``, ``("oom",)`` or ``("err", exception, traceback)``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import resource
import signal
import socket
import struct
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from typing import Any, Final

FRAME_HEADER: Final = struct.Struct("!Q")  # length of the pickled payload that follows
_PR_SET_PDEATHSIG: Final = 1


def child_main(
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
    header = _recv_exactly(sock, FRAME_HEADER.size)
    if header is None:
        return None
    (size,) = FRAME_HEADER.unpack(header)
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
    sock.sendall(FRAME_HEADER.pack(len(payload)))
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
