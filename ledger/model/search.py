"""Search hits and the dry-run plan of a submit, read from the chunk index."""

from __future__ import annotations

import msgspec
from msgspec import Struct


class SearchHit(Struct, frozen=True):
    """One matching chunk: where it comes from (for citations) and how well it matched.
    ``score``: higher is better (BM25 on SQLite, ``ts_rank_cd`` on PostgreSQL; comparable
    within one backend only)."""

    chunk_id: int
    document_id: int
    batch_id: str
    source: str  # the server path, or for an upload its file name (never its storage path)
    source_name: str  # how to cite it: an upload's original file name, else the source path
    ordinal: int
    page: int | None  # 1-based page of a paged format (PDF), else null
    char_start: int  # offsets of the chunk in the document's extracted text
    char_end: int
    text: str
    snippet: str  # a short excerpt with the matches between « and »
    score: float  # higher is better; comparable within one backend only


class PlanGroup(Struct, frozen=True):
    """How many sources fall in one group, and the first ``listed`` of them."""

    count: int = 0
    sources: list[str] = msgspec.field(default_factory=list)


class Plan(Struct, frozen=True):
    """What submitting these sources would do, against what is indexed for the owner.

    new: no document of the owner holds this source's text; changed: it is indexed but the
    size, modification time or SHA-256 differ (or nothing is known to compare); unchanged:
    indexed with the same size and modification time (or the same SHA-256); gone: indexed
    under the planned roots (or in the planned batch) but not among the sources.
    """

    new: PlanGroup
    changed: PlanGroup
    unchanged: PlanGroup
    gone: PlanGroup
