"""A client that sends its request headers too slowly is answered 408 and disconnected,
on a new connection and on a kept-alive one, however the bytes trickle in."""

from __future__ import annotations

import dataclasses
import os
import select
import socket
import time
from collections.abc import Iterator

import pytest

from tests.api.conftest import REPO, Server, start_server, stop_server
from tests.helpers.server import free_port, spawn

# The deadline is short; the test waits far longer before calling the connection stuck.
GIVE_UP_SECONDS = 60


@pytest.fixture(scope="module", params=["uvicorn", "ledger serve"])
def slow_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The API under uvicorn (as a deployment runs it) and under ``ledger serve``."""
    env = {"LEDGER_AUTH": "off", "LEDGER_HEADER_TIMEOUT_SECONDS": "0.5"}
    srv = start_server(tmp_path_factory.mktemp("slow-headers"), env)
    if request.param == "ledger serve":
        stop_server(srv)
        port = free_port()
        full_env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "LEDGER_HOME": str(srv.home),
            "LEDGER_DATABASE_URL": srv.db_url,
            **env,
        }
        args = ["-m", "ledger", "serve", "--no-workers", "--host", "127.0.0.1"]
        proc = spawn(
            [*args, "--port", str(port)], env=full_env, log=srv.log, cwd=srv.home, port=port
        )
        srv = dataclasses.replace(srv, base_url=f"http://127.0.0.1:{port}", proc=proc)
    yield srv
    stop_server(srv)


def _connect(server: Server) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.settimeout(GIVE_UP_SECONDS)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """What the server sent before it closed the connection. A close that finds bytes of
    ours still unread (a byte trickled in just before) is a reset rather than an orderly
    end: the connection is closed all the same, and what arrived before it counts."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def test_headers_that_never_finish_get_408_and_a_closed_connection(slow_server: Server) -> None:
    with _connect(slow_server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        received = _read_until_closed(sock)  # a server that waits forever fails by timeout
    assert received.startswith(b"HTTP/1.1 408 ")


def test_trickled_bytes_do_not_keep_the_connection(slow_server: Server) -> None:
    """One header byte at a time, each well within the deadline: the deadline still holds."""
    with _connect(slow_server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ")
        answer = None
        stop_at = time.monotonic() + GIVE_UP_SECONDS
        while answer is None and time.monotonic() < stop_at:
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                answer = _read_until_closed(sock)
                break
            try:
                sock.sendall(b"a")
            except OSError:  # the server closed it between two bytes
                answer = b""
    assert answer is not None, "the server kept a connection whose headers trickled in"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")


def test_a_kept_alive_connection_gets_the_same_deadline(slow_server: Server) -> None:
    with _connect(slow_server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 "), first
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        received = _read_until_closed(sock)
    assert b"HTTP/1.1 408 " in received
