"""A real webhook receiver on a loopback port: records every POST, answers from a script,
and verifies signatures with the ``standardwebhooks`` package."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops connections when many arrive at once
    daemon_threads = True


class Receiver:
    """Answers each POST with the next status of ``answers`` (then 200); a 3xx redirects to
    another path of its own. A status of 0 holds the request until :meth:`release` and then
    answers 503."""

    def __init__(self, answers: list[int] | None = None) -> None:
        self.answers: deque[int] = deque(answers or [])
        self.received: list[Received] = []
        self.arrived = threading.Condition()
        self.released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.arrived:
                    status = receiver.answers.popleft() if receiver.answers else 200
                if status == 0:
                    receiver._record(self, body, 0)
                    receiver.released.wait(60)
                    status = 503
                else:
                    receiver._record(self, body, status)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("location", f"{receiver.url}/moved")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _record(self, handler: BaseHTTPRequestHandler, body: bytes, status: int) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self.arrived:
            self.received.append(Received(headers, body, status))
            self.arrived.notify_all()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 60) -> list[Received]:
        """Block until ``count`` POSTs arrived (generous deadline); return them all."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"{len(self.received)} of {count} webhooks arrived")
            return list(self.received)

    def release(self) -> None:
        self.released.set()

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Every body received, each after its signature was verified (raises otherwise)."""
        checker = Webhook(secret)
        return [checker.verify(r.body, r.headers) for r in self.received]
