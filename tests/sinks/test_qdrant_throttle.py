"""A Qdrant server that answers 429 (a real HTTP server on loopback standing in for a busy
Qdrant): the sink raises a throttle carrying the server's Retry-After, or none without
one, never a permanent refusal."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ledger.sinks.base import SinkError, SinkPoint, SinkProfile
from ledger.sinks.qdrant import QdrantSink


class Busy(BaseHTTPRequestHandler):
    retry_after: str | None = "7"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b'{"status": {"error": "Too many requests"}}'
        self.send_response(429)
        if self.retry_after is not None:
            self.send_header("Retry-After", self.retry_after)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def busy_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        Busy.retry_after = "7"


def point() -> SinkPoint:
    return SinkPoint(id="6f1d2c1e-6b7a-4d59-9c3e-5a8f0d2b7c41", vector=[1.0, 0.0], payload={})


@pytest.mark.parametrize(("header", "wait"), [("7", 7.0), (None, None)])
def test_a_429_is_a_throttle_with_the_servers_wait(
    busy_url: str, header: str | None, wait: float | None
) -> None:
    Busy.retry_after = header
    sink = QdrantSink(SinkProfile(name="busy", kind="qdrant", settings={"url": busy_url}))
    try:
        with pytest.raises(SinkError) as caught:
            sink.upsert([point()])
    finally:
        sink.close()
    error = caught.value
    assert error.throttled and not error.permanent
    assert error.retry_after == wait
    assert error.message.startswith("sink 'busy': look up collection: ")
    assert ("throttled" if header else "HTTP 429") in error.message
