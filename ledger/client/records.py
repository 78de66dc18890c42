"""What a ledger server sends back, as typed values: search hits and chunks, each with the
citation of its source (as ``GET /search`` and ``GET /batches/{id}/chunks`` define them).
Unknown fields are ignored, so a newer server's additions do not break an older client."""

from __future__ import annotations

from typing import Any

import msgspec


class SearchHit(msgspec.Struct, frozen=True, kw_only=True):
    """One matching chunk, best first within its results."""

    chunk_id: int
    document_id: int
    batch_id: str
    source: str  # the server path, or for an upload its file name
    source_name: str  # how to cite it: an upload's file name, else the path under its folder
    ordinal: int
    page: int | None  # 1-based page of a paged format (PDF), else None
    char_start: int  # the chunk's offsets in the document's extracted text
    char_end: int
    text: str
    snippet: str
    score: float  # higher is better; comparable within one search only

    def citation(self) -> dict[str, Any]:
        """The fields that cite this hit (everything but the texts), for a framework's
        metadata."""
        return {**_citation(self), "source": self.source, "score": self.score}


class SearchResults(msgspec.Struct, frozen=True, kw_only=True):
    query: str
    k: int
    hits: list[SearchHit]


class Chunk(msgspec.Struct, frozen=True, kw_only=True):
    """One chunk of a batch, in chunk id order within the stream."""

    chunk_id: int
    document_id: int
    batch_id: str
    ordinal: int
    text: str
    page: int | None
    char_start: int
    char_end: int
    source_name: str
    document_sha256: str | None
    text_sha256: str
    vectors: dict[str, list[float]] | None = None  # model -> vector, when asked for

    def citation(self) -> dict[str, Any]:
        """The fields that cite this chunk (everything but the text and vectors)."""
        return {
            **_citation(self),
            "document_sha256": self.document_sha256,
            "text_sha256": self.text_sha256,
        }


def _citation(item: SearchHit | Chunk) -> dict[str, Any]:
    return {
        "source_name": item.source_name,
        "page": item.page,
        "char_start": item.char_start,
        "char_end": item.char_end,
        "chunk_id": item.chunk_id,
        "ordinal": item.ordinal,
        "document_id": item.document_id,
        "batch_id": item.batch_id,
    }


def cite(citation: dict[str, Any]) -> str:
    """A citation in words: ``docs/guide.md``, ``report.pdf, page 3``."""
    name = str(citation.get("source_name", "?"))
    page = citation.get("page")
    return name if page is None else f"{name}, page {page}"
