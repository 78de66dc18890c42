"""What each client call does, written once, as steps the sync and the async client run.

A flow is a generator: it yields the I/O it needs (:class:`Send` a request, read an
answer's lines or its body, :class:`Sleep`) and gets each result sent back, or the
transport's error thrown in; it yields :class:`Emit` for each item of a stream and returns
a call's value. :class:`ledger.client.sync.LedgerClient` runs the steps with blocking
calls, :class:`ledger.client.aio.AsyncLedgerClient` with ``await``; neither repeats what a
call means (its requests, retries, resumes and decoding: :mod:`ledger.client.protocol`).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from ledger.client import protocol
from ledger.client.protocol import ChunkCursor, RetryRules
from ledger.client.records import Chunk, SearchHit

T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    """``GET path?params``: the answer, streamed (its body not read yet)."""

    path: str
    params: dict[str, str | int]


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class ReadBody:
    """The answer's body, at most ``limit`` bytes when given (what arrived, if it is cut
    then); the answer is closed after."""

    response: httpx.Response
    limit: int | None = None


@dataclass(frozen=True)
class NextLine:
    """The answer's next line; None at its end."""

    response: httpx.Response


@dataclass(frozen=True)
class Close:
    response: httpx.Response


@dataclass(frozen=True)
class Emit:
    """One item of a stream, for the caller."""

    chunk: Chunk


Step = Send | Sleep | ReadBody | NextLine | Close | Emit
Flow = Generator[Step, Any, T]


class Runner:
    """Advances a flow one step at a time, with the result (or the error) of the last one.
    It remembers the answers it opened, so a caller that stops reading a stream early still
    gets them closed (:meth:`opened`)."""

    def __init__(self, flow: Flow[Any]) -> None:
        self._flow = flow
        self._value: Any = None
        self._error: BaseException | None = None
        self.result: Any = None
        self.responses: list[httpx.Response] = []
        self.lines: dict[int, Any] = {}  # each streamed answer's line iterator, by its id

    def next(self) -> Step | None:
        """The next step; None when the flow returned (its value in ``result``)."""
        try:
            if self._error is not None:
                error, self._error = self._error, None
                step = self._flow.throw(error)
            else:
                step = self._flow.send(self._value)
        except StopIteration as stop:
            self.result = stop.value
            return None
        self._value = None
        return step

    def answer(self, step: Step, value: Any) -> None:
        """What the step gave, sent to the flow with the next :meth:`next`."""
        if isinstance(step, Send):
            self.responses.append(value)
        elif isinstance(step, Close | ReadBody):  # closed by the step: forgotten
            self.lines.pop(id(step.response), None)
            self.responses = [r for r in self.responses if r is not step.response]
        self._value = value

    def fail(self, error: httpx.TransportError) -> None:
        """The step got no answer: thrown into the flow with the next :meth:`next`."""
        self._error = error

    def opened(self) -> list[httpx.Response]:
        """The answers opened so far (each is to be closed; closing twice is harmless)."""
        self._flow.close()
        return self.responses


def opening(
    rules: RetryRules, base_url: str, path: str, params: dict[str, str | int]
) -> Flow[httpx.Response]:
    """The answer to ``GET path`` with a success status, its body not read yet; retried as
    :mod:`ledger.client.protocol` says, else its error raised."""
    attempt = 0
    while True:
        attempt += 1
        try:
            response: httpx.Response = yield Send(path, params)
        except httpx.TransportError as exc:
            yield Sleep(protocol.retry_or_raise_transport(rules, attempt, exc, base_url))
            continue
        if response.is_success:  # a redirect is an error: the key stays with this host
            return response
        body = yield ReadBody(response, protocol.MAX_ERROR_BODY)
        yield Sleep(
            protocol.retry_or_raise(
                rules,
                attempt,
                status=response.status_code,
                headers=response.headers,
                body=body,
                path=path,
            )
        )


def search(rules: RetryRules, base_url: str, params: dict[str, str | int]) -> Flow[list[SearchHit]]:
    """The hits of a search of ``params`` (:func:`ledger.client.protocol.search_params`)."""
    response = yield from opening(rules, base_url, protocol.SEARCH_PATH, params)
    body = yield ReadBody(response)
    return protocol.decode_search(body)


def chunks(
    rules: RetryRules,
    base_url: str,
    batch: str,
    *,
    vectors: bool,
    model: str | None,
    after: int,
    page_size: int | None,
) -> Flow[None]:
    """Every chunk of ``batch`` after ``after``, emitted in chunk id order across as many
    requests as it takes (see :meth:`ledger.client.sync.LedgerClient.iter_chunks`)."""
    cursor = ChunkCursor(batch, after=after, rules=rules)
    path = protocol.chunks_path(batch)
    while not cursor.done:
        params = cursor.params(vectors=vectors, model=model, page_size=page_size)
        response = yield from opening(rules, base_url, path, params)
        error: Exception | None = None
        try:
            while (line := (yield NextLine(response))) is not None:
                chunk = cursor.feed(line)
                if chunk is not None:
                    yield Emit(chunk)
                if cursor.stop:
                    break
        except httpx.TransportError as exc:
            error = exc
        yield Close(response)
        delay = cursor.finish(error)
        if delay:
            yield Sleep(delay)
