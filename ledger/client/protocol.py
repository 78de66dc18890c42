"""The parts of talking to a ledger server that are the same for the sync and the async
client: the requests' paths and parameters, what an answer's status means (retry after how
long, or which error), and the chunk stream's cursor.

Retries: 429 and 503 are asked again up to ``retries`` times, after the server's
``Retry-After`` (or Litestar's ``RateLimit-Reset``) when it sends one, else after a short
exponential backoff; a server that asks for a longer wait than ``max_retry_wait`` gets an
immediate error carrying ``retry_after``, rather than a client that silently blocks for
minutes. A request that never reached the server (connection refused, timeout) is retried
the same way: every request the client makes is a read.

The chunk stream (``GET /batches/{id}/chunks``) always ends with a ``{"next_after": N}``
line. A stream that stops before it was cut (a proxy's timeout, a restarted server): the
cursor knows the last chunk id received and the next request starts ``after`` it, so no
chunk is lost or repeated. Cuts that bring no new chunk count against ``max_resumes``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import msgspec
from pydantic import SecretStr

from ledger.backoff import RetryPolicy, parse_retry_after
from ledger.client.errors import (
    ClientError,
    ConnectionFailed,
    RateLimited,
    StreamBroken,
    Unavailable,
    for_status,
)
from ledger.client.records import Chunk, SearchHit

log = logging.getLogger("ledger.client")

API = "/api/v1"
DEFAULT_URL = "http://127.0.0.1:8000"
URL_VARIABLE = "LEDGER_URL"
KEY_VARIABLE = "LEDGER_API_KEY"
RETRIED_STATUSES = frozenset({429, 503})
MAX_DETAIL = 500
MAX_ERROR_BODY = 65_536  # an error answer is read this far, whatever its length


@dataclass(frozen=True)
class RetryRules:
    """How patient a client is: ``retries`` after the first try, never a wait longer than
    ``max_retry_wait`` seconds, and ``max_resumes`` fruitless resumes of a cut stream."""

    retries: int = 3
    max_retry_wait: float = 30.0
    max_resumes: int = 5
    backoff: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(base=0.5, factor=2.0, cap=8.0, jitter=0.25)
    )


def base_url(url: str) -> str:
    """The server's root URL without a trailing slash; an http(s) URL with no credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClientError(f"not an http(s) server URL: {url!r}")
    if parts.username or parts.password:
        raise ClientError("put the API key in api_key, not in the server URL")
    return url.rstrip("/")


def auth_headers(api_key: str | SecretStr | None) -> dict[str, str]:
    """The request headers that carry the key (none in local single-user mode). A key kept
    as a ``SecretStr`` (shown as stars wherever it is printed) is read only here."""
    headers = {"Accept": "application/json, application/x-ndjson"}
    if isinstance(api_key, SecretStr):
        api_key = api_key.get_secret_value()
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def search_params(
    query: str,
    *,
    mode: str,
    k: int,
    batch: str | None,
    embedder: str | None,
    model: str | None,
) -> dict[str, str | int]:
    """``GET /search``'s query parameters (the server validates them: 422 when wrong)."""
    params: dict[str, str | int] = {"q": query, "k": k, "mode": mode}
    for name, value in (("batch", batch), ("embedder", embedder), ("model", model)):
        if value is not None:
            params[name] = value
    return params


SEARCH_PATH = f"{API}/search"
_SEARCH = msgspec.json.Decoder(dict[str, Any])


def chunks_path(batch: str) -> str:
    return f"{API}/batches/{quote(batch, safe='')}/chunks"


def _detail(body: bytes) -> str:
    """The server's own words: a problem document's ``detail``, else the start of the body."""
    try:
        problem = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body[:MAX_DETAIL].decode("utf-8", "replace").strip()
    if isinstance(problem, dict) and isinstance(problem.get("detail"), str):
        return str(problem["detail"])[:MAX_DETAIL]
    return body[:MAX_DETAIL].decode("utf-8", "replace").strip()


def server_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked to wait: ``Retry-After``, else ``RateLimit-Reset``."""
    asked = parse_retry_after(headers.get("retry-after"))
    return asked if asked is not None else parse_retry_after(headers.get("ratelimit-reset"))


def retry_or_raise(
    rules: RetryRules,
    attempt: int,
    *,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    path: str,
) -> float:
    """Seconds to wait before trying an answer of ``status`` again (``attempt``: 1-based
    number of the try that got it); raises the answer's error when it is not worth it."""
    asked = server_wait(headers)
    patient = asked is None or asked <= rules.max_retry_wait
    if status in RETRIED_STATUSES and attempt <= rules.retries and patient:
        delay = rules.backoff.delay(attempt, retry_after=asked)
        log.info("ledger server answered %s on %s; asking again in %.1f s", status, path, delay)
        return delay
    kind = for_status(status)
    waited = f" (the server asks to wait {asked:.0f} s)" if asked is not None else ""
    message = f"{status} on {path}: {_detail(body) or kind.__doc__}{waited}"
    if kind in (RateLimited, Unavailable) and attempt > 1:
        message += f", after {attempt} tries"
    raise kind(message, status=status, retry_after=asked if status in RETRIED_STATUSES else None)


def retry_or_raise_transport(rules: RetryRules, attempt: int, error: Exception, url: str) -> float:
    """Seconds to wait before sending a request that got no answer again; raises
    :class:`ConnectionFailed` once the retries are used up."""
    if attempt <= rules.retries:
        return rules.backoff.delay(attempt)
    raise ConnectionFailed(f"cannot reach the ledger server at {url}: {error!r}") from error


def decode_search(body: bytes) -> list[SearchHit]:
    """The hits of a search answer, best first."""
    try:
        hits = _SEARCH.decode(body).get("hits")
        if not isinstance(hits, list):
            raise ClientError("the server's search answer has no list of hits")
        return [msgspec.convert(hit, SearchHit) for hit in hits]
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ClientError(f"the server's search answer is not what a ledger sends: {exc}") from exc


class ChunkCursor:
    """Where a chunk stream has got to, across the requests that make it up.

    ``feed`` each line of an answer; ``stop`` says to read no further from it; ``finish``
    after each answer says how long to wait before the next request (``done``: none).
    """

    def __init__(self, batch: str, *, after: int, rules: RetryRules) -> None:
        self.batch = batch
        self.after = after
        self.done = False
        self.stop = False
        self._rules = rules
        self._page_ended = False
        self._progressed = False
        self._fruitless = 0

    def params(
        self, *, vectors: bool, model: str | None, page_size: int | None
    ) -> dict[str, str | int]:
        """The next request's parameters: from the last chunk received."""
        self.stop = self._page_ended = self._progressed = False
        params: dict[str, str | int] = {"after": self.after}
        if vectors:
            params["vectors"] = "true"
        if model is not None:
            params["model"] = model
        if page_size is not None:
            params["limit"] = page_size
        return params

    def feed(self, line: str) -> Chunk | None:
        """The chunk on ``line``, or None for the final line (or a line cut in half)."""
        if not line.strip():
            return None
        try:
            item = msgspec.json.decode(line)
            if isinstance(item, dict) and "next_after" in item and "chunk_id" not in item:
                self.stop = True
                if item["next_after"] is None:
                    self.done = True
                else:  # ``limit`` ended the page: the rest is after this cursor
                    self.after = int(item["next_after"])
                    self._page_ended = True
                return None
            chunk = msgspec.convert(item, Chunk)
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError, ValueError):
            log.warning("unreadable line in the chunk stream of batch %s", self.batch)
            self.stop = True
            return None
        self.after = chunk.chunk_id
        self._progressed = True
        return chunk

    def finish(self, error: Exception | None = None) -> float:
        """Seconds to wait before asking for the rest; raises :class:`StreamBroken` when
        cuts keep coming without a new chunk."""
        if self.done or self._page_ended:
            self._fruitless = 0
            return 0.0
        self._fruitless = 0 if self._progressed else self._fruitless + 1
        why = f": {error!r}" if error is not None else ""
        if self._fruitless > self._rules.max_resumes:
            raise StreamBroken(
                f"the chunk stream of batch {self.batch} was cut {self._fruitless} times "
                f"after chunk {self.after}{why}; resume with after={self.after}"
            ) from error
        log.warning(
            "the chunk stream of batch %s was cut after chunk %s%s; resuming",
            self.batch,
            self.after,
            why,
        )
        return self._rules.backoff.delay(self._fruitless) if self._fruitless else 0.0
