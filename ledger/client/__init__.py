"""A typed HTTP client of a ledger server (the ``client`` extra: httpx).

``LedgerClient(url, api_key).search(query)`` gives the best chunks with their citations;
``iter_chunks(batch)`` streams a batch's chunks (NDJSON, resumed after the last chunk when
the stream is cut). ``AsyncLedgerClient`` is the same for asyncio. Errors are the classes in
:mod:`ledger.client.errors`; no repr, message or log line holds the API key.
"""

from ledger.extras import require

require("client", "httpx", what="The ledger HTTP client")

from ledger.client.aio import AsyncLedgerClient  # noqa: E402
from ledger.client.errors import (  # noqa: E402
    ClientError,
    ConnectionFailed,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServerError,
    StreamBroken,
    Unauthorized,
    Unavailable,
)
from ledger.client.protocol import RetryRules  # noqa: E402
from ledger.client.records import Chunk, SearchHit, cite  # noqa: E402
from ledger.client.sync import LedgerClient  # noqa: E402

__all__ = [
    "AsyncLedgerClient",
    "Chunk",
    "ClientError",
    "ConnectionFailed",
    "Forbidden",
    "InvalidRequest",
    "LedgerClient",
    "NotFound",
    "RateLimited",
    "RetryRules",
    "SearchHit",
    "ServerError",
    "StreamBroken",
    "Unauthorized",
    "Unavailable",
    "cite",
]
