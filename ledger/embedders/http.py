"""An OpenAI-compatible embedding endpoint: hosted APIs, Ollama, vLLM, TEI, LiteLLM ...

``POST {base_url}/embeddings`` with ``{"model": ..., "input": [texts]}``; the answer's
``data[i].embedding`` (ordered by ``data[i].index`` when present) is the vector of text i.

Texts go in requests of ``batch_size``; at most ``concurrency`` requests are in flight per
``base_url`` in this process, whatever the number of documents and batches being worked
(one ``asyncio.Semaphore`` per endpoint and event loop). How failures are classified:

| what | error | code |
| --- | --- | --- |
| connection refused, DNS failure, connection reset | Retryable, systemic | ``embed_unavailable`` |
| timeout (connect, read, write, pool) | Retryable, systemic | ``embed_timeout`` |
| 429 | Throttled (``Retry-After`` honoured): rescheduled, no attempt charged | ``embed_http_429`` |
| 5xx | Retryable (``Retry-After`` honoured), systemic | ``embed_http_5xx`` |
| other 4xx | Permanent, with the server's message | ``embed_http_4xx`` |
| an answer that is not the vectors asked for | Retryable, systemic | ``embed_bad_response`` |
| vectors of another dimension than declared | Permanent, systemic | ``embed_dimension`` |

A 5xx, a refused or reset connection and a malformed answer are first tried again within
the call, ``IN_CALL_TRIES`` times in all with a short jittered backoff, so one bad answer in
a few does not cost the document an attempt. Timeouts are not (the call already waited its
``timeout``), nor are 429s: those go back to the ledger, which reschedules the document
(see ``ledger/backpressure.py``).
"""

from __future__ import annotations

import asyncio
import os
import random
import weakref
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from ledger.backoff import parse_retry_after
from ledger.backpressure import Throttled
from ledger.embedders.base import EmbedderSpec, Matrix
from ledger.errors import PermanentError, RetryableError

MAX_MESSAGE = 500
IN_CALL_TRIES = 3  # tries of one request on a 5xx or a broken connection
IN_CALL_BACKOFF = 0.2  # seconds before the second try; doubled, then jittered down by half
IN_CALL_WAIT_CAP = 2.0  # a Retry-After on a 5xx longer than this goes back to the ledger

# One semaphore per endpoint, per event loop (a semaphore belongs to the loop it waits on).
_LIMITS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def endpoint_limit(base_url: str, concurrency: int) -> asyncio.Semaphore:
    """The process-wide limit of concurrent requests to ``base_url`` (the first
    concurrency asked for an endpoint is the one in force)."""
    per_loop = _LIMITS.setdefault(asyncio.get_running_loop(), {})
    limit = per_loop.get(base_url)
    if limit is None:
        limit = per_loop[base_url] = asyncio.Semaphore(concurrency)
    return limit


def _server_message(response: httpx.Response) -> str:
    """What the server said went wrong: OpenAI's ``error.message``, a ``detail`` or
    ``message`` field, else the body's text."""
    text = response.text
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            text = error["message"]
        elif isinstance(error, str):
            text = error
        elif isinstance(body.get("detail"), str):
            text = body["detail"]
        elif isinstance(body.get("message"), str):
            text = body["message"]
    return " ".join(text.split())[:MAX_MESSAGE]


class HttpEmbedder:
    """Embeds through an OpenAI-compatible ``/embeddings`` endpoint (see module doc)."""

    def __init__(self, spec: EmbedderSpec) -> None:
        assert spec.base_url is not None
        self.spec = spec
        self.url = spec.base_url + "/embeddings"
        self.requests = 0  # sent by this process (for reports)

    @property
    def model(self) -> str:
        return self.spec.model

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.spec.api_key_env is not None:
            key = os.environ.get(self.spec.api_key_env)
            if not key:
                raise PermanentError(
                    "embed_config",
                    f"the API key variable {self.spec.api_key_env} is not set",
                    systemic=True,
                )
            headers["Authorization"] = f"Bearer {key}"
        elif self.spec.api_key_file is not None:
            try:
                with open(self.spec.api_key_file, encoding="utf-8") as file:
                    key = file.read().strip()
            except OSError as exc:
                raise PermanentError(
                    "embed_config",
                    f"the API key file of the embedder cannot be read: {exc.strerror}",
                    systemic=True,
                ) from exc
            if not key:
                raise PermanentError("embed_config", "the API key file is empty", systemic=True)
            headers["Authorization"] = f"Bearer {key}"
        return headers

    async def embed(self, texts: Sequence[str]) -> Matrix:
        """The vectors of ``texts``, in order: ``batch_size`` per request, requests in
        parallel up to the endpoint's limit. One failed request fails the call (requests
        that succeeded are returned to nobody: the caller caches per call, so keep calls
        to about ``batch_size * concurrency`` texts)."""
        if not texts:
            return np.zeros((0, self.spec.dimension or 0), dtype=np.float32)
        size = self.spec.batch_size
        limit = endpoint_limit(self.url, self.spec.concurrency)
        timeout = httpx.Timeout(self.spec.timeout)
        async with httpx.AsyncClient(timeout=timeout, headers=self._headers()) as client:

            async def one(part: Sequence[str]) -> Matrix:
                async with limit:
                    return await self._request(client, part)

            parts = [texts[i : i + size] for i in range(0, len(texts), size)]
            results = await asyncio.gather(*(one(p) for p in parts))
        return np.concatenate(results) if len(results) > 1 else results[0]

    async def _request(self, client: httpx.AsyncClient, texts: Sequence[str]) -> Matrix:
        """One request, tried again in the call on transient trouble (see module doc)."""
        for attempt in range(1, IN_CALL_TRIES + 1):
            try:
                return await self._request_once(client, texts)
            except Throttled:
                raise
            except RetryableError as exc:
                if attempt == IN_CALL_TRIES or exc.code == "embed_timeout":
                    raise
                wait = IN_CALL_BACKOFF * 2 ** (attempt - 1) * (1 - 0.5 * random.random())
                if exc.retry_after is not None:
                    if exc.retry_after > IN_CALL_WAIT_CAP:
                        raise
                    wait = max(wait, exc.retry_after)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _request_once(self, client: httpx.AsyncClient, texts: Sequence[str]) -> Matrix:
        body = {"model": self.spec.model, "input": list(texts)}
        self.requests += 1
        try:
            response = await client.post(self.url, json=body)
        except httpx.TimeoutException as exc:
            raise RetryableError(
                "embed_timeout",
                f"the embedding endpoint {self.url} did not answer within "
                f"{self.spec.timeout:g} s ({type(exc).__name__})",
                systemic=True,
            ) from exc
        except httpx.TransportError as exc:
            raise RetryableError(
                "embed_unavailable",
                f"the embedding endpoint {self.url} cannot be reached: {type(exc).__name__}: {exc}",
                systemic=True,
            ) from exc
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            raise Throttled(
                "embed_http_429",
                f"the embedding endpoint answered 429: {_server_message(response)}",
                retry_after=retry_after,
            )
        if status >= 500:
            raise RetryableError(
                "embed_http_5xx",
                f"the embedding endpoint answered {status}: {_server_message(response)}",
                retry_after=retry_after,
                systemic=True,
            )
        if status >= 400:
            raise PermanentError(
                "embed_http_4xx",
                f"the embedding endpoint refused the request ({status}): "
                f"{_server_message(response)}",
            )
        return self._vectors(response, len(texts))

    def _vectors(self, response: httpx.Response, count: int) -> Matrix:
        def bad(why: str) -> RetryableError:
            return RetryableError(
                "embed_bad_response", f"the embedding endpoint's answer {why}", systemic=True
            )

        try:
            data: Any = response.json()["data"]
            if not isinstance(data, list) or len(data) != count:
                raise bad(
                    f"has {len(data) if isinstance(data, list) else 'no'} vectors for {count} texts"
                )
            if all(isinstance(d.get("index"), int) for d in data):
                data = sorted(data, key=lambda d: d["index"])
            matrix = np.asarray([d["embedding"] for d in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise bad(f"is not a list of embeddings ({type(exc).__name__}: {exc})") from exc
        if matrix.ndim != 2 or matrix.shape[1] == 0 or not np.isfinite(matrix).all():
            raise bad("has vectors of unequal length, empty ones or non-finite values")
        expected = self.spec.dimension
        if expected is not None and matrix.shape[1] != expected:
            raise PermanentError(
                "embed_dimension",
                f"the endpoint returned {matrix.shape[1]}-dimensional vectors for model "
                f"{self.spec.model}, {expected} were declared",
                systemic=True,
            )
        return matrix
