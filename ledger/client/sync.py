"""A blocking client of a ledger server: search, and a batch's chunks as a stream."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import httpx
import msgspec
from pydantic import SecretStr

from ledger.client import protocol
from ledger.client.protocol import ChunkCursor, RetryRules
from ledger.client.records import Chunk, SearchHit


class LedgerClient:
    """``LedgerClient(url, api_key)``: the server's root URL (``http://127.0.0.1:8000``) and
    an API key (``ledger keys create --tenant NAME``; None in local single-user mode). Every
    call acts as the key's tenant. Close it, or use it as a context manager."""

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
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=protocol.auth_headers(api_key),
            timeout=timeout,
            follow_redirects=False,  # a redirect must not carry the key elsewhere
        )

    @classmethod
    def from_env(cls, **kwargs: Any) -> LedgerClient:
        """From ``LEDGER_URL`` (default ``http://127.0.0.1:8000``) and ``LEDGER_API_KEY``."""
        url = os.environ.get(protocol.URL_VARIABLE) or protocol.DEFAULT_URL
        return cls(url, os.environ.get(protocol.KEY_VARIABLE) or None, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

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
        params = protocol.search_params(
            query, mode=mode, k=k, batch=batch, embedder=embedder, model=model
        )
        response = self._open(protocol.SEARCH_PATH, params)
        try:
            body = response.read()
        finally:
            response.close()
        return [msgspec.convert(hit, SearchHit) for hit in protocol.decode_search(body)]

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
        cursor = ChunkCursor(batch, after=after, rules=self.rules)
        path = protocol.chunks_path(batch)
        while not cursor.done:
            params = cursor.params(vectors=vectors, model=model, page_size=page_size)
            response = self._open(path, params)
            error: Exception | None = None
            try:
                for line in response.iter_lines():
                    chunk = cursor.feed(line)
                    if chunk is not None:
                        yield chunk
                    if cursor.stop:
                        break
            except httpx.TransportError as exc:
                error = exc
            finally:
                response.close()
            delay = cursor.finish(error)
            if delay:
                time.sleep(delay)

    def _open(self, path: str, params: dict[str, str | int]) -> httpx.Response:
        """The answer to ``GET path`` with a success status, its body not read yet."""
        attempt = 0
        while True:
            attempt += 1
            request = self._http.build_request("GET", path, params=params)
            try:
                response = self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                time.sleep(
                    protocol.retry_or_raise_transport(self.rules, attempt, exc, self.base_url)
                )
                continue
            if response.is_success:  # a redirect is an error: the key stays with this host
                return response
            try:
                body = response.read()
            finally:
                response.close()
            time.sleep(
                protocol.retry_or_raise(
                    self.rules,
                    attempt,
                    status=response.status_code,
                    headers=response.headers,
                    body=body,
                    path=path,
                )
            )
