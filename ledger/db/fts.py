"""Full-text search over chunks: the one place that knows FTS5 and tsvector apart.

SQLite: ``chunks_fts``, an FTS5 external-content table over ``chunks.text`` (tokenizer
``unicode61 remove_diacritics 2``: case and accents folded, no stemming), kept in sync by
triggers on ``chunks``; ranked with ``bm25()``.

PostgreSQL: ``chunks.tsv``, a stored generated ``tsvector`` (configuration ``ledger_fts``:
a copy of ``simple`` with ``unaccent`` where that extension exists: case and accents folded,
no stemming, no stop words, like the SQLite side) with a GIN index; ranked with
``ts_rank_cd``.

Both are created by the migrations only and are not in ``ledger.db.models.metadata``;
:func:`include_name` keeps schema comparisons (``alembic check``) from reporting them.

Query syntax, the same on both backends: words (all must occur), ``"quoted phrases"``,
``OR`` between two alternatives, and ``-word`` to exclude a word. Everything else is taken
literally: user text never reaches FTS5 as syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ledger.errors import InvalidInput

FTS_TABLE = "chunks_fts"
TSV_COLUMN = "tsv"
TSV_INDEX = "ix_chunks_tsv"
TS_CONFIG = "ledger_fts"
MAX_QUERY_CHARS = 1_000
MAX_QUERY_TERMS = 64

# The FTS5 table and its shadow tables (SQLite) and the tsvector column and its index
# (PostgreSQL): dialect-specific, owned by the migrations.
_FTS_TABLES = re.compile(rf"^{FTS_TABLE}(_(data|idx|content|docsize|config))?$")
_WORD = re.compile(r"\w", re.UNICODE)
_TOKEN = re.compile(r'-?"[^"]*"?|\S+')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic ``include_name`` hook: leave the full-text objects out of comparisons."""
    if name is None:
        return True
    if type_ == "table":
        return not _FTS_TABLES.match(name)
    if type_ == "column" and parent_names.get("table_name") == "chunks":
        return name != TSV_COLUMN
    if type_ == "index":
        return name != TSV_INDEX
    return True


@dataclass(frozen=True)
class Term:
    text: str  # a word or a phrase, as the user wrote it (without quotes)
    negated: bool = False


@dataclass(frozen=True)
class ParsedQuery:
    """A query as groups of terms: the groups are alternatives (OR), the terms within a
    group must all match (AND), negated terms must not."""

    groups: tuple[tuple[Term, ...], ...]


def parse_query(query: str) -> ParsedQuery:
    """Split user input into terms; raise :class:`InvalidInput` if nothing searchable."""
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"the query is longer than {MAX_QUERY_CHARS} characters")
    groups: list[list[Term]] = [[]]
    count = 0
    # Control characters separate words; a NUL would end the string early in SQLite.
    for token in _TOKEN.findall(_CONTROL.sub(" ", query)):
        if token == "OR":
            if groups[-1]:
                groups.append([])
            continue
        negated = token.startswith("-") and len(token) > 1
        body = token[1:] if negated else token
        if body.startswith('"'):
            body = body.strip('"')
        if not _WORD.search(body):
            continue  # punctuation only: matches nothing on either backend
        groups[-1].append(Term(body, negated))
        count += 1
        if count > MAX_QUERY_TERMS:
            raise InvalidInput(f"the query has more than {MAX_QUERY_TERMS} terms")
    usable = tuple(tuple(g) for g in groups if any(not t.negated for t in g))
    if not usable:
        raise InvalidInput("the query has no words to search for")
    return ParsedQuery(usable)


def _fts5_string(text: str) -> str:
    # An FTS5 string: double quotes, inner quotes doubled. The tokenizer then splits it
    # into words; several words make a phrase. No operator can hide in a string.
    return '"' + text.replace('"', '""') + '"'


def fts5_match(parsed: ParsedQuery) -> str:
    """The FTS5 MATCH expression for a parsed query."""
    alternatives = []
    for group in parsed.groups:
        positive = " AND ".join(_fts5_string(t.text) for t in group if not t.negated)
        negative = "".join(f" NOT {_fts5_string(t.text)}" for t in group if t.negated)
        alternatives.append(f"({positive}{negative})")
    return " OR ".join(alternatives)


def websearch_text(parsed: ParsedQuery) -> str:
    """The text for PostgreSQL's ``websearch_to_tsquery``, rebuilt from the parsed terms so
    both backends read a query alike."""

    def term(t: Term) -> str:
        words = t.text.replace('"', " ")
        return ("-" if t.negated else "") + (f'"{words}"' if " " in words.strip() else words)

    return " OR ".join(" ".join(term(t) for t in group) for group in parsed.groups)


# The ranked full-text statements: the joins and columns index/search.py maps into hits;
# ``{filters}`` is its tenant and batch conditions (bound parameters only). Equal scores are
# ordered by source and position, not by chunk id: ids follow the order in which documents
# happened to finish, so the same query over the same files would rank ties differently
# from one run to the next.
SQLITE_SEARCH = """
SELECT c.id AS chunk_id, c.document_id, c.batch_id, d.source, d.meta, b.roots, c.ordinal, c.page,
       c.char_start, c.char_end, c.text,
       snippet(chunks_fts, 0, '«', '»', '…', 24) AS snippet,
       -bm25(chunks_fts) AS score
FROM chunks_fts
JOIN chunks c ON c.id = chunks_fts.rowid
JOIN documents d ON d.id = c.document_id
JOIN batches b ON b.id = d.batch_id
WHERE chunks_fts MATCH :match AND b.deleting_at IS NULL {filters}
ORDER BY bm25(chunks_fts), d.source, c.ordinal, c.id
LIMIT :k
"""

# ts_rank_cd normalisation 1: divide by 1 + log(length), so a short chunk that is about
# the term outranks a long one that mentions it in passing (as BM25 does).
POSTGRES_SEARCH = """
WITH q AS (SELECT websearch_to_tsquery('{config}', :match) AS query),
hits AS (
  SELECT c.id AS chunk_id, c.document_id, c.batch_id, d.source, d.meta, b.roots, c.ordinal, c.page,
         c.char_start, c.char_end, c.text, ts_rank_cd(c.tsv, q.query, 1) AS score
  FROM q, chunks c
  JOIN documents d ON d.id = c.document_id
  JOIN batches b ON b.id = d.batch_id
  WHERE c.tsv @@ q.query AND b.deleting_at IS NULL {filters}
  ORDER BY score DESC, d.source, c.ordinal, c.id
  LIMIT :k
)
SELECT hits.*, ts_headline('{config}', hits.text, q.query,
         'StartSel=«, StopSel=», MaxWords=30, MinWords=12, MaxFragments=1') AS snippet
FROM hits, q
ORDER BY hits.score DESC, hits.source, hits.ordinal, hits.chunk_id
"""
