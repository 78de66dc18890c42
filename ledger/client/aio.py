"""An asyncio client of a ledger server: search, and a batch's chunks as a stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import httpx

from ledger.client import protocol
from ledger.client.base import ClientBase
from ledger.client.protocol import ChunkCursor
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
        params = protocol.search_params(
            query, mode=mode, k=k, batch=batch, embedder=embedder, model=model
        )
        response = await self._open(protocol.SEARCH_PATH, params)
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        return protocol.decode_search(body)

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
        cursor = ChunkCursor(batch, after=after, rules=self.rules)
        path = protocol.chunks_path(batch)
        while not cursor.done:
            params = cursor.params(vectors=vectors, model=model, page_size=page_size)
            response = await self._open(path, params)
            error: Exception | None = None
            try:
                async for line in response.aiter_lines():
                    chunk = cursor.feed(line)
                    if chunk is not None:
                        yield chunk
                    if cursor.stop:
                        break
            except httpx.TransportError as exc:
                error = exc
            finally:
                await response.aclose()
            delay = cursor.finish(error)
            if delay:
                await asyncio.sleep(delay)

    async def _open(self, path: str, params: dict[str, str | int]) -> httpx.Response:
        """The answer to ``GET path`` with a success status, its body not read yet."""
        attempt = 0
        while True:
            attempt += 1
            request = self._http.build_request("GET", path, params=params)
            try:
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                await asyncio.sleep(
                    protocol.retry_or_raise_transport(self.rules, attempt, exc, self.base_url)
                )
                continue
            if response.is_success:  # a redirect is an error: the key stays with this host
                return response
            body = await self._error_body(response)
            await asyncio.sleep(
                protocol.retry_or_raise(
                    self.rules,
                    attempt,
                    status=response.status_code,
                    headers=response.headers,
                    body=body,
                    path=path,
                )
            )

    @staticmethod
    async def _error_body(response: httpx.Response) -> bytes:
        """The start of an error answer's body (enough for its problem document), then the
        connection is closed; a body cut short is what arrived."""
        body = b""
        try:
            async for piece in response.aiter_bytes():
                body += piece
                if len(body) >= protocol.MAX_ERROR_BODY:
                    break
        except httpx.TransportError:
            pass
        finally:
            await response.aclose()
        return body[: protocol.MAX_ERROR_BODY]
