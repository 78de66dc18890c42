"""An asyncio client of a ledger server: search, and a batch's chunks as a stream."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import httpx
import msgspec
from pydantic import SecretStr

from ledger.client import protocol
from ledger.client.protocol import ChunkCursor, RetryRules
from ledger.client.records import Chunk, SearchHit


class AsyncLedgerClient:
    """``AsyncLedgerClient(url, api_key)``: as :class:`ledger.client.LedgerClient`, with
    ``await`` (``search``, ``aclose``) and ``async for`` (``iter_chunks``); one event loop."""

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr | None = None,
        *,
        timeout: float = 30.0,
        rules: RetryRules | None = None,
    ) -> None:
        self.base_url = protocol.base_url(base_url)
        self.rules = rules or RetryRules()
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=protocol.auth_headers(api_key),
            timeout=timeout,
            follow_redirects=False,  # a redirect must not carry the key elsewhere
        )

    @classmethod
    def from_env(cls, **kwargs: Any) -> AsyncLedgerClient:
        """From ``LEDGER_URL`` (default ``http://127.0.0.1:8000``) and ``LEDGER_API_KEY``."""
        url = os.environ.get(protocol.URL_VARIABLE) or protocol.DEFAULT_URL
        return cls(url, os.environ.get(protocol.KEY_VARIABLE) or None, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

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
        """The ``k`` best chunks for ``query`` of the key's tenant, best first, each with its
        citation. ``mode``: ``text`` (BM25), ``vector`` or ``hybrid`` (these embed the query
        with ``embedder``, an operator's profile, or the batch's own)."""
        params = protocol.search_params(
            query, mode=mode, k=k, batch=batch, embedder=embedder, model=model
        )
        response = await self._open(protocol.SEARCH_PATH, params)
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        return [msgspec.convert(hit, SearchHit) for hit in protocol.decode_search(body)]

    async def iter_chunks(
        self,
        batch: str,
        *,
        vectors: bool = False,
        model: str | None = None,
        after: int = 0,
        page_size: int | None = None,
    ) -> AsyncIterator[Chunk]:
        """Every chunk of ``batch`` after chunk id ``after``, in chunk id order, streamed
        (memory stays bounded). A cut stream is resumed after the last chunk received;
        ``page_size`` asks for the batch in requests of that many chunks."""
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
            try:
                body = await response.aread()
            finally:
                await response.aclose()
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
