"""Starts test worker processes by fork, from one process that has imported everything.

A worker started with ``python -m`` spends a second or more importing the project before it
claims anything; crash-loop tests that kill and restart workers fifty times would spend most
of their time there. This process imports once and forks a fresh worker per request: each
one is a separate process with its own database connections (opened after the fork) that
runs ``tests.helpers.worker_proc.main``, exactly as a ``python -m`` worker does.

Protocol, one JSON object per line: the test writes
``{"url": ..., "batches": [...], "env": {...}, "log": path}`` on stdin and reads back
``{"pid": N}``. The worker's output goes to ``log``; when it has exited, its wait status
(``returncode`` as subprocess reports it: negative for a signal) is written to
``log + ".exit"``. End of input: the zygote waits for its children and exits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
import traceback

from tests.helpers import worker_proc
from tests.helpers.worker_proc import main


def _write_line(fd: int, obj: object) -> None:
    # os.write, not print: no Python-level lock a forked child could inherit held.
    os.write(fd, (json.dumps(obj) + "\n").encode())


def _reaper(logs: dict[int, str], lock: threading.Lock) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:  # no children right now
            time.sleep(0.01)
            continue
        code = os.waitstatus_to_exitcode(status)
        with lock:
            log = logs.pop(pid, None)
        if log is not None:
            tmp = log + ".exit.tmp"
            with open(tmp, "w") as file:
                file.write(str(code))
            os.replace(tmp, log + ".exit")


def _child(request: dict[str, object]) -> None:
    log = str(request["log"])
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    os.environ.update({str(k): str(v) for k, v in dict(request["env"]).items()})  # type: ignore[call-overload]
    code = 0
    try:
        logging.basicConfig(level=os.environ.get("LEDGER_TEST_LOG", "WARNING"), force=True)
        asyncio.run(main(str(request["url"]), [str(b) for b in request["batches"]]))  # type: ignore[attr-defined]
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    assert worker_proc  # imported for its imports: they are what the children reuse
    logs: dict[int, str] = {}
    lock = threading.Lock()
    threading.Thread(target=_reaper, args=(logs, lock), daemon=True).start()
    out = sys.stdout.fileno()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        with lock:  # the reaper must not see the child before its log is known
            pid = os.fork()
            if pid == 0:
                _child(request)
            logs[pid] = str(request["log"])
        _write_line(out, {"pid": pid})
    while True:  # end of input: wait until every child has been reaped
        with lock:
            if not logs:
                return
        time.sleep(0.05)


if __name__ == "__main__":
    serve()
