"""LlamaIndex over a ledger server's index (the ``llamaindex`` extra: llama-index-core only).

``LedgerRetriever`` answers a query with the tenant's best chunks as ``NodeWithScore``s
(``retrieve`` and ``aretrieve``); ``LedgerReader.lazy_load_data(batch)`` streams a batch's
chunks as ``Document``s, one at a time, however large the batch. Every node's metadata
holds its citation as the LangChain adapter's does (``source_name``, ``page``,
``char_start``, ``char_end``, ``chunk_id``, ``ordinal``, ``document_id``, ``batch_id``);
only ``source_name`` and ``page`` are shown to the LLM, and no metadata is embedded. A
node's id is ``ledger-chunk-<chunk_id>``; its source relationship names
``ledger-document-<document_id>``.
"""

from __future__ import annotations

from ledger.extras import require

require("llamaindex", "llama_index.core", "httpx", what="The LlamaIndex adapter")

from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

from llama_index.core.base.base_retriever import BaseRetriever  # noqa: E402
from llama_index.core.readers.base import BaseReader  # noqa: E402
from llama_index.core.schema import (  # noqa: E402
    Document,
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)
from pydantic import SecretStr  # noqa: E402

from ledger.client import (  # noqa: E402
    AsyncLedgerClient,
    Chunk,
    LedgerClient,
    SearchHit,
    protocol,
)
from ledger.client.protocol import DEFAULT_URL  # noqa: E402

# What an LLM sees of a node besides its text: where it comes from, nothing else.
SHOWN_TO_LLM = frozenset({"source_name", "page"})


def _node_fields(item: SearchHit | Chunk) -> dict[str, Any]:
    metadata = item.citation()
    return {
        "id_": f"ledger-chunk-{item.chunk_id}",
        "text": item.text,
        "metadata": metadata,
        "excluded_llm_metadata_keys": sorted(set(metadata) - SHOWN_TO_LLM),
        "excluded_embed_metadata_keys": sorted(metadata),
        "relationships": {
            NodeRelationship.SOURCE: RelatedNodeInfo(
                node_id=f"ledger-document-{item.document_id}",
                metadata={"source_name": item.source_name},
            )
        },
    }


def _scored(hits: list[SearchHit]) -> list[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(
                **_node_fields(hit), start_char_idx=hit.char_start, end_char_idx=hit.char_end
            ),
            score=hit.score,
        )
        for hit in hits
    ]


class LedgerRetriever(BaseRetriever):
    """The ``similarity_top_k`` best chunks of the key's tenant for a query. ``mode``:
    ``text`` (BM25), ``vector`` or ``hybrid`` (the query embedded with ``embedder``, an
    operator's profile, or the batch's own); ``batch`` keeps to one batch."""

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        similarity_top_k: int = 4,
        mode: str = "text",
        batch: str | None = None,
        embedder: str | None = None,
        model: str | None = None,
        timeout: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.base_url = protocol.base_url(base_url)
        self.similarity_top_k = similarity_top_k
        self.mode = mode
        self.batch = batch
        self.embedder = embedder
        self.model = model
        self.timeout = timeout
        self._api_key = SecretStr(api_key) if api_key else None  # '**********' when shown

    def __repr__(self) -> str:
        return f"LedgerRetriever(base_url={self.base_url!r}, mode={self.mode!r})"

    def _search_args(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "k": self.similarity_top_k,
            "batch": self.batch,
            "embedder": self.embedder,
            "model": self.model,
        }

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        with LedgerClient(self.base_url, self._api_key, timeout=self.timeout) as client:
            hits = client.search(query_bundle.query_str, **self._search_args())
        return _scored(hits)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        async with AsyncLedgerClient(self.base_url, self._api_key, timeout=self.timeout) as client:
            hits = await client.search(query_bundle.query_str, **self._search_args())
        return _scored(hits)


class LedgerReader(BaseReader):
    """A batch's chunks as ``Document``s in chunk id order, streamed from the server
    (``lazy_load_data(batch)``; ``load_data(batch)`` makes the list). With ``model``, each
    Document carries that model's stored vector as its ``embedding``, so an index built from
    them embeds nothing again."""

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = protocol.base_url(base_url)
        self.model = model
        self.timeout = timeout
        self._api_key = SecretStr(api_key) if api_key else None

    def __repr__(self) -> str:
        return f"LedgerReader(base_url={self.base_url!r})"

    def lazy_load_data(self, batch: str, after: int = 0) -> Iterator[Document]:
        with LedgerClient(self.base_url, self._api_key, timeout=self.timeout) as client:
            vectors = self.model is not None
            for chunk in client.iter_chunks(batch, vectors=vectors, model=self.model, after=after):
                embedding = (chunk.vectors or {}).get(self.model) if self.model else None
                yield Document(**_node_fields(chunk), embedding=embedding)
