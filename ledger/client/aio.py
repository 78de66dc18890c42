"""An asyncio client of a ledger server: search, and a batch's chunks as a stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import httpx

from ledger.client import flows
from ledger.client.base import ClientBase
from ledger.client.records import Chunk, SearchHit


class AsyncLedgerClient(ClientBase[httpx.AsyncClient]):
    """An asyncio client (see :class:`ClientBase` for the arguments), as
    :class:`LedgerClient` with ``await`` (``search``, ``aclose``) and ``async for``
    (``iter_chunks``); use it on one event loop."""

    def _session(self, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(**options)

    async def __aenter__(self) -> AsyncLedgerClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def search(
        self,
        query: str,
        *,
        mode: str = "text",
        k: int = 10,
        batch: str | None = None,
        embedder: str | None = None,
        model: str | None = None,
    ) -> list[SearchHit]:
        """As :meth:`LedgerClient.search`."""
        runner = self._searching(query, mode=mode, k=k, batch=batch, embedder=embedder, model=model)
        try:
            await self._advance(runner)
        finally:
            await self._close(runner)
        result: list[SearchHit] = runner.result
        return result

    async def iter_chunks(
        self,
        batch: str,
        *,
        vectors: bool = False,
        model: str | None = None,
        after: int = 0,
        page_size: int | None = None,
    ) -> AsyncIterator[Chunk]:
        """As :meth:`LedgerClient.iter_chunks`, for ``async for``."""
        runner = self._streaming(
            batch, vectors=vectors, model=model, after=after, page_size=page_size
        )
        try:
            while (emitted := await self._advance(runner)) is not None:
                yield emitted.chunk
        finally:
            await self._close(runner)

    async def _advance(self, runner: flows.Runner) -> flows.Emit | None:
        """Run the flow's steps up to its next item (None: to its end)."""
        while (step := runner.next()) is not None:
            if isinstance(step, flows.Emit):
                return step
            try:
                runner.answer(step, await self._do(step, runner))
            except httpx.TransportError as exc:
                runner.fail(exc)
        return None

    async def _do(self, step: flows.Step, runner: flows.Runner) -> Any:
        if isinstance(step, flows.Send):
            request = self._http.build_request("GET", step.path, params=step.params)
            return await self._http.send(request, stream=True)
        if isinstance(step, flows.NextLine):
            lines = runner.lines.setdefault(id(step.response), step.response.aiter_lines())
            return await anext(lines, None)
        if isinstance(step, flows.ReadBody):
            return await self._read(step.response, step.limit)
        if isinstance(step, flows.Sleep):
            await asyncio.sleep(step.seconds)
        elif isinstance(step, flows.Close):
            await step.response.aclose()
        return None

    @staticmethod
    async def _read(response: httpx.Response, limit: int | None) -> bytes:
        """As :meth:`LedgerClient._read`."""
        body = b""
        try:
            if limit is None:
                return await response.aread()
            async for piece in response.aiter_bytes():
                body += piece
                if len(body) >= limit:
                    break
        except httpx.TransportError:
            if limit is None:
                raise
        finally:
            await response.aclose()
        return body[:limit]

    @staticmethod
    async def _close(runner: flows.Runner) -> None:
        for response in runner.opened():
            await response.aclose()
