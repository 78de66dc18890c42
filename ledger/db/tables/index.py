"""The index's tables: chunks, their vectors, the embedding cache and staged chunks."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ledger.db.tables.base import metadata
from ledger.db.types import BigIntId, UTCDateTime

# The chunk index: the text of every done document, in order. Written only in the
# transaction that marks the document done (see ledger.index.chunks), so a document is done
# exactly when all its chunks are here. The full-text index over ``text`` is
# dialect-specific and lives in the migrations only (ledger.db.fts): an FTS5
# external-content table on SQLite, a generated tsvector column with a GIN index on
# PostgreSQL.
chunks = Table(
    "chunks",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column(
        "document_id",
        BigIntId,
        ForeignKey("documents.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("batch_id", String(200), ForeignKey("batches.id", ondelete="CASCADE"), nullable=False),
    Column("ordinal", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("char_start", BigIntId, nullable=False),
    Column("char_end", BigIntId, nullable=False),
    Column("page", Integer, nullable=True, doc="1-based page of the first character (PDF)"),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("document_id", "ordinal"),
    CheckConstraint("ordinal >= 0", name="ordinal_nonnegative"),
    CheckConstraint("char_start >= 0", name="char_start_nonnegative"),
    CheckConstraint("char_end >= char_start", name="char_end_after_start"),
    CheckConstraint("page IS NULL OR page >= 1", name="page_positive"),
    # A batch's chunks in id order, a page at a time (migration 0011).
    Index(None, "batch_id", "id"),
)

# Embeddings (migration 0006). ``chunk_vectors``: the vector of each stored chunk, written in
# the same transaction as the chunk (so a document is done exactly when its chunks and their
# vectors are stored) and removed with it. ``embedding_cache``: every vector ever computed,
# keyed by the SHA-256 of the text and the model, written as soon as the embedder answers
# (so no text is sent to the same model twice, across documents, batches and crashes).
# Vectors are unit-length float32, little-endian: 4 * dimension bytes.
chunk_vectors = Table(
    "chunk_vectors",
    metadata,
    Column(
        "chunk_id",
        BigIntId,
        ForeignKey("chunks.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("model", String(200), primary_key=True),
    Column("dimension", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("dimension > 0", name="dimension_positive"),
    CheckConstraint("length(vector) = 4 * dimension", name="vector_length"),
    # The vector search scans one model's vectors in chunk id order.
    Index(None, "model", "chunk_id"),
)

embedding_cache = Table(
    "embedding_cache",
    metadata,
    Column("text_sha256", String(64), primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("dimension", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("dimension > 0", name="dimension_positive"),
    CheckConstraint("length(vector) = 4 * dimension", name="vector_length"),
)

# Chunks staged before their document's finish (migration 0020): a big spool is read into
# these rows in short transactions of their own, each fenced by the attempt's lease token,
# so the finish attaches them with one INSERT ... SELECT and reads no file under the write
# lock. Never read by search or exports (they read ``chunks``); the finish deletes the
# document's staged rows, a rescue or the next attempt those of an abandoned attempt.
staged_chunks = Table(
    "staged_chunks",
    metadata,
    Column(
        "document_id",
        BigIntId,
        ForeignKey("documents.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("lease_token", String(32), primary_key=True),
    Column("ordinal", Integer, primary_key=True),
    Column("text", Text, nullable=False),
    Column("char_start", BigIntId, nullable=False),
    Column("char_end", BigIntId, nullable=False),
    Column("page", Integer, nullable=True),
    Column("text_sha256", String(64), nullable=True, doc="the embedding cache key, if any"),
    CheckConstraint("ordinal >= 0", name="ordinal_nonnegative"),
)
