"""A blocking client of a ledger server: search, and a batch's chunks as a stream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import httpx

from ledger.client import flows
from ledger.client.base import ClientBase
from ledger.client.records import Chunk, SearchHit


class LedgerClient(ClientBase[httpx.Client]):
    """A blocking client (see :class:`ClientBase` for the arguments). Close it, or use it
    as a context manager."""

    def _session(self, **options: Any) -> httpx.Client:
        return httpx.Client(**options)

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def search(
        self,
        query: str,
        *,
        mode: str = "text",
        k: int = 10,
        batch: str | None = None,
        embedder: str | None = None,
        model: str | None = None,
    ) -> list[SearchHit]:
        """The ``k`` best chunks for ``query`` of the key's tenant, best first, each with its
        citation. ``mode``: ``text`` (BM25), ``vector`` or ``hybrid`` (these embed the query
        with ``embedder``, an operator's profile, or the batch's own)."""
        runner = self._searching(query, mode=mode, k=k, batch=batch, embedder=embedder, model=model)
        try:
            self._advance(runner)
        finally:
            self._close(runner)
        result: list[SearchHit] = runner.result
        return result

    def iter_chunks(
        self,
        batch: str,
        *,
        vectors: bool = False,
        model: str | None = None,
        after: int = 0,
        page_size: int | None = None,
    ) -> Iterator[Chunk]:
        """Every chunk of ``batch`` after chunk id ``after``, in chunk id order, streamed
        (memory stays bounded). A cut stream is resumed after the last chunk received;
        ``page_size`` asks for the batch in requests of that many chunks."""
        runner = self._streaming(
            batch, vectors=vectors, model=model, after=after, page_size=page_size
        )
        try:
            while (emitted := self._advance(runner)) is not None:
                yield emitted.chunk
        finally:
            self._close(runner)

    def _advance(self, runner: flows.Runner) -> flows.Emit | None:
        """Run the flow's steps up to its next item (None: to its end)."""
        while (step := runner.next()) is not None:
            if isinstance(step, flows.Emit):
                return step
            try:
                runner.answer(step, self._do(step, runner))
            except httpx.TransportError as exc:
                runner.fail(exc)
        return None

    def _do(self, step: flows.Step, runner: flows.Runner) -> Any:
        if isinstance(step, flows.Send):
            request = self._http.build_request("GET", step.path, params=step.params)
            return self._http.send(request, stream=True)
        if isinstance(step, flows.NextLine):
            lines = runner.lines.setdefault(id(step.response), step.response.iter_lines())
            return next(lines, None)
        if isinstance(step, flows.ReadBody):
            return self._read(step.response, step.limit)
        if isinstance(step, flows.Sleep):
            time.sleep(step.seconds)
        elif isinstance(step, flows.Close):
            step.response.close()
        return None

    @staticmethod
    def _read(response: httpx.Response, limit: int | None) -> bytes:
        """The body (an error answer's start: ``limit`` bytes, or what arrived before a cut,
        enough for its problem document), then the answer is closed."""
        body = b""
        try:
            if limit is None:
                return response.read()
            for piece in response.iter_bytes():
                body += piece
                if len(body) >= limit:
                    break
        except httpx.TransportError:
            if limit is None:
                raise
        finally:
            response.close()
        return body[:limit]

    @staticmethod
    def _close(runner: flows.Runner) -> None:
        for response in runner.opened():
            response.close()
