"""LangChain over a ledger server's index (the ``langchain`` extra: langchain-core only).

``LedgerRetriever`` answers a query with the tenant's best chunks as ``Document``s (sync and
async); ``LedgerLoader`` streams a batch's chunks as ``Document``s, one at a time, however
large the batch. Each ``Document``'s metadata holds its citation: ``source_name``, ``page``,
``char_start``, ``char_end``, ``chunk_id``, ``ordinal``, ``document_id``, ``batch_id`` (and
the retriever's ``source`` and ``score``; the loader's ``document_sha256`` and
``text_sha256``); its ``id`` is ``ledger-chunk-<chunk_id>``.
"""

from __future__ import annotations

from ledger.extras import require

require("langchain", "langchain_core", "httpx", what="The LangChain adapter")

from collections.abc import AsyncIterator, Iterator  # noqa: E402
from typing import Any, Literal  # noqa: E402

from langchain_core.callbacks import (  # noqa: E402
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.document_loaders import BaseLoader  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from pydantic import Field, SecretStr, field_validator  # noqa: E402

from ledger.client import (  # noqa: E402
    AsyncLedgerClient,
    Chunk,
    ClientError,
    LedgerClient,
    SearchHit,
    protocol,
)
from ledger.client.protocol import DEFAULT_URL  # noqa: E402


def _document(item: SearchHit | Chunk) -> Document:
    return Document(
        page_content=item.text, metadata=item.citation(), id=f"ledger-chunk-{item.chunk_id}"
    )


class LedgerRetriever(BaseRetriever):
    """The ``k`` best chunks of the key's tenant for a query: ``retriever.invoke(query)`` or
    ``await retriever.ainvoke(query)``. ``mode``: ``text`` (BM25), ``vector`` or ``hybrid``
    (the query embedded with ``embedder``, an operator's profile, or the batch's own)."""

    base_url: str = DEFAULT_URL
    api_key: SecretStr | None = None  # shown as '**********' in reprs
    k: int = Field(default=4, ge=1, le=100)
    mode: Literal["text", "vector", "hybrid"] = "text"
    batch_id: str | None = None  # only this batch's chunks (``batch`` is a Runnable method)
    embedder: str | None = None
    model: str | None = None
    timeout: float = 30.0

    @field_validator("base_url")
    @classmethod
    def _server_url(cls, url: str) -> str:
        try:
            return protocol.base_url(url)  # an http(s) URL without credentials in it
        except ClientError as error:
            raise ValueError(error.message) from error

    def _search_args(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "k": self.k,
            "batch": self.batch_id,
            "embedder": self.embedder,
            "model": self.model,
        }

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        with LedgerClient(self.base_url, self.api_key, timeout=self.timeout) as client:
            hits = client.search(query, **self._search_args())
        return [_document(hit) for hit in hits]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        async with AsyncLedgerClient(self.base_url, self.api_key, timeout=self.timeout) as client:
            hits = await client.search(query, **self._search_args())
        return [_document(hit) for hit in hits]


class LedgerLoader(BaseLoader):
    """A batch's chunks as ``Document``s in chunk id order, streamed from the server:
    ``lazy_load()`` (or ``alazy_load()``) holds one page of the stream at a time, whatever
    the batch's size; a cut stream resumes after the last chunk received."""

    def __init__(
        self,
        batch: str,
        *,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        after: int = 0,
        timeout: float = 30.0,
    ) -> None:
        self.batch = batch
        self.base_url = protocol.base_url(base_url)
        self.after = after
        self.timeout = timeout
        self._api_key = SecretStr(api_key) if api_key else None

    def __repr__(self) -> str:
        return f"LedgerLoader({self.batch!r}, base_url={self.base_url!r})"

    def lazy_load(self) -> Iterator[Document]:
        with LedgerClient(self.base_url, self._api_key, timeout=self.timeout) as client:
            for chunk in client.iter_chunks(self.batch, after=self.after):
                yield _document(chunk)

    async def alazy_load(self) -> AsyncIterator[Document]:
        async with AsyncLedgerClient(self.base_url, self._api_key, timeout=self.timeout) as client:
            async for chunk in client.iter_chunks(self.batch, after=self.after):
                yield _document(chunk)
