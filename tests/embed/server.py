"""A real OpenAI-compatible embedding server on a loopback port, for the tests.

``POST /v1/embeddings`` with ``{"model", "input": [...]}`` answers ``data[i].embedding``:
a deterministic bag-of-words vector (each lower-cased word hashed to one of ``DIM``
dimensions, with a sign), so texts sharing words are close and the same text always gets
the same vector. It records every request and the texts of the requests it answered with
vectors (``delivered``), enforces an input limit in tokens (words and punctuation marks;
400 above it) and a model name (404 for another), and plays faults from a script:
``("429", retry_after)``, ``("500",)``, ``("delay", seconds)`` (answer late: the client's
timeout fires; its texts do not count as delivered), or from a repeating ``pattern``
(``[(5, ("429", 1)), (7, ("500",))]``: every 5th request a 429 with Retry-After 1, every
7th a 500; the first that divides the request's number wins); it can go down (port closed:
connection refused) and come back on the same port. A ``retry_after`` of ``"date+N"`` is
sent as an HTTP date N seconds ahead.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

DIM = 64
MODEL = "bow-64"
_WORD = re.compile(r"\w+")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def bow_vector(text: str) -> list[float]:
    vector = np.zeros(DIM)
    for word in _WORD.findall(text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        vector[digest[0] % DIM] += 1.0 if digest[1] & 1 else -1.0
    if not vector.any():
        vector[0] = 1.0
    return [float(x) for x in vector]


class EmbeddingServer:
    """Start with ``start()``; ``base_url`` is what the ``openai`` embedder is given."""

    def __init__(self, *, max_tokens: int = 512, delay: float = 0.0) -> None:
        self.max_tokens = max_tokens
        self.delay = delay  # seconds before every answer
        self.script: deque[tuple[Any, ...]] = deque()
        self.pattern: list[tuple[int, tuple[Any, ...]]] = []
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []  # every request: inputs and status
        self.delivered: list[str] = []  # texts whose vectors were returned
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def statuses(self) -> list[int]:
        with self.lock:
            return [r.get("status", 0) for r in self.requests]

    def start(self) -> EmbeddingServer:
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def down(self) -> None:
        """Close the port: clients get connection refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def up(self) -> None:
        """Listen again on the same port."""
        if self._server is None:
            self.start()

    def answer(
        self, body: dict[str, Any], authorization: str | None = None
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        record: dict[str, Any] = {
            "inputs": list(texts or []),
            "at": time.monotonic(),
            "authorization": authorization,
        }
        with self.lock:
            self.requests.append(record)
            action = self.script.popleft() if self.script else None
            number = len(self.requests)
            for every, planned in self.pattern:
                if action is None and number % every == 0:
                    action = planned
        if self.delay:
            time.sleep(self.delay)
        status, headers, payload = self._respond(body, texts, action)
        record["status"] = status
        return status, headers, payload

    def _respond(
        self, body: dict[str, Any], texts: Any, action: tuple[Any, ...] | None
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        if action is not None and action[0] == "429":
            return 429, {"Retry-After": _retry_after(action[1])}, _error("rate limit reached")
        if action is not None and action[0] == "500":
            return 500, {}, _error("the model server crashed")
        if action is not None and action[0] == "delay":
            time.sleep(action[1])
            return 599, {}, _error("answered too late")  # the client gave up before this
        if body.get("model") != MODEL:
            return 404, {}, _error(f"model {body.get('model')!r} not found")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return 400, {}, _error("input must be a list of strings")
        for i, text in enumerate(texts):
            if tokens(text) > self.max_tokens:
                return (
                    400,
                    {},
                    _error(f"input {i} has {tokens(text)} tokens, more than {self.max_tokens}"),
                )
        with self.lock:
            self.delivered.extend(texts)
        data = [
            {"object": "embedding", "index": i, "embedding": bow_vector(t)}
            for i, t in enumerate(texts)
        ]
        return 200, {}, {"object": "list", "model": MODEL, "data": data}


def _retry_after(value: Any) -> str:
    """The header value: seconds as given, or ``"date+N"`` as an HTTP date N s ahead."""
    if isinstance(value, str) and value.startswith("date+"):
        return email.utils.formatdate(time.time() + float(value[5:]), usegmt=True)
    return str(value)


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error"}}


def _handler_for(server: EmbeddingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            if server._server is None:  # down: kept-alive connections are cut too
                self.close_connection = True
                return
            if self.path != "/v1/embeddings":
                self._send(404, {}, _error(f"no route {self.path}"))
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self._send(400, {}, _error("the body is not JSON"))
                return
            status, headers, payload = server.answer(body, self.headers.get("Authorization"))
            if status == 599:
                self.close_connection = True
                return
            self._send(status, headers, payload)

        def _send(self, status: int, headers: dict[str, str], payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client went away

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
