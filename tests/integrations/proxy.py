"""A loopback TCP proxy in front of a real server that plays faults, one per connection.

Each new connection takes the next entry of ``faults``: None passes it through; ``("cut",
n)`` forwards the first ``n`` bytes of the server's answer and then closes both sides (a
stream cut off mid-body, as a proxy's timeout or a restarted server leaves it);
``("status", code, retry_after)`` answers that status itself without asking the server (an
overloaded gateway). With no entry left, connections pass through.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections import deque
from typing import Any

Fault = tuple[Any, ...] | None


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.faults: deque[Fault] = deque()
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()

    def start(self) -> FaultProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                fault = self.faults.popleft() if self.faults else None
            threading.Thread(target=self._serve, args=(conn, fault), daemon=True).start()

    def _serve(self, client: socket.socket, fault: Fault) -> None:
        with client:
            if fault is not None and fault[0] == "status":
                _answer(client, fault[1], fault[2])
                return
            limit = fault[1] if fault is not None and fault[0] == "cut" else None
            with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                threading.Thread(target=_pump, args=(client, upstream, None), daemon=True).start()
                _pump(upstream, client, limit)


def _pump(source: socket.socket, sink: socket.socket, limit: int | None) -> None:
    """Copy ``source`` to ``sink`` until either closes (or ``limit`` bytes, then close)."""
    sent = 0
    with contextlib.suppress(OSError):
        while limit is None or sent < limit:
            data = source.recv(65536 if limit is None else min(65536, limit - sent))
            if not data:
                break
            sink.sendall(data)
            sent += len(data)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _answer(client: socket.socket, status: int, retry_after: int | None) -> None:
    head = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in head:
            data = client.recv(65536)
            if not data:
                return
            head += data
    body = json.dumps({"title": "injected", "status": status, "detail": "injected fault"})
    lines = [
        f"HTTP/1.1 {status} Injected",
        "Content-Type: application/problem+json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if retry_after is not None:
        lines.append(f"Retry-After: {retry_after}")
    with contextlib.suppress(OSError):
        client.sendall(("\r\n".join(lines) + "\r\n\r\n" + body).encode())
