"""A blocking client of a ledger server: search, and a batch's chunks as a stream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import httpx

from ledger.client import protocol
from ledger.client.base import ClientBase
from ledger.client.protocol import ChunkCursor
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
        params = protocol.search_params(
            query, mode=mode, k=k, batch=batch, embedder=embedder, model=model
        )
        response = self._open(protocol.SEARCH_PATH, params)
        try:
            body = response.read()
        finally:
            response.close()
        return protocol.decode_search(body)

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
            body = self._error_body(response)
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

    @staticmethod
    def _error_body(response: httpx.Response) -> bytes:
        """The start of an error answer's body (enough for its problem document), then the
        connection is closed; a body cut short is what arrived."""
        body = b""
        try:
            for piece in response.iter_bytes():
                body += piece
                if len(body) >= protocol.MAX_ERROR_BODY:
                    break
        except httpx.TransportError:
            pass
        finally:
            response.close()
        return body[: protocol.MAX_ERROR_BODY]
