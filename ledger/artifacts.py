"""What a processor's outcome carries besides its result, and the ledger facts it is given.

Plain frozen values with no I/O, so a processor (which may run in another process) can
build them and the worker can hand them to the finish transaction: an outcome is data, never
a database callback.

- :class:`IndexArtifacts`: what the finish records about the document's content (its
  SHA-256, size and time), and, with a :class:`ChunkSpool`, the chunks to index (from the
  embedding cache with a ``model``, their vectors too).
- :class:`ChunkRow`: a chunk ready to store, its text's cache key computed before the
  finish (a finish transaction hashes nothing).
- :class:`DocumentFacts`: what the ledger knows about the document's source and content
  (its dedup facts), read by the worker in one batched read per claimed group and passed
  in with the document (``ClaimedDocument.facts``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]

# float32 little-endian, by name: numpy is imported only by the functions that handle
# vectors, so a process that never handles one (most workers) starts without loading it.
DTYPE = "<f4"


def text_sha256(text: str) -> str:
    """The embedding cache's key of a text (with the model)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def to_bytes(vector: npt.ArrayLike) -> bytes:
    """A vector as stored: unit length (a zero vector stays zero), float32 little-endian."""
    import numpy as np

    array = np.asarray(vector, dtype=np.float64).ravel()
    norm = float(np.linalg.norm(array))
    if not np.isfinite(norm):
        raise ValueError("a vector with a non-finite value cannot be stored")
    if norm > 0:
        array = array / norm
    return array.astype(DTYPE).tobytes()


def from_bytes(data: bytes) -> Vector:
    import numpy as np

    return np.frombuffer(data, dtype=DTYPE)


@dataclass(frozen=True)
class ChunkSpool:
    """A document's chunks in a spool file (``ledger.processors.ingest.spool``): ``count``
    chunks numbered ``0..count-1``, made from content ``sha256``. The worker removes the
    file once the outcome is recorded or dropped (the outcome's ``cleanup``)."""

    path: str
    count: int
    sha256: str


@dataclass(frozen=True)
class IndexArtifacts:
    """What the finish transaction records about an indexed document.

    Without ``spool``: only the content's facts (a document skipped as unchanged or as a
    duplicate; a container without a text body); with ``supersede`` the older documents of
    its source lose their chunks. With ``spool``: its chunks become the indexed text of the
    source (always superseding), each with its ``model`` vector from the embedding cache
    when a model is named, and every sink of ``sinks`` is told to mirror the version.
    With ``dedup``, the finish records the document as a duplicate instead when another
    document of its owner already holds this content (the check a processor could not make
    before it knew the content's hash).
    """

    sha256: str
    size: int | None = None
    mtime_ns: int | None = None
    spool: ChunkSpool | None = None
    supersede: bool = False
    model: str | None = None
    sinks: tuple[str, ...] = ()
    dedup: bool = False


@dataclass(frozen=True)
class ChunkRow:
    """One chunk as the finish stores it; ``key`` is its text's cache key (with a model)."""

    ordinal: int
    text: str
    char_start: int
    char_end: int
    page: int | None
    key: str | None = None


ETAG = "etag"  # the key of an object's ETag in a document's meta, recorded at submit


def etag_of(meta: object) -> str | None:
    """An object's ETag recorded in a document's meta (None for a file)."""
    etag = meta.get(ETAG) if isinstance(meta, dict) else None
    return etag if isinstance(etag, str) and etag else None


@dataclass(frozen=True)
class Holder:
    """A document that holds its source's chunks (done, not superseded, not retired)."""

    id: int
    source: str
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    models: frozenset[str] = frozenset()  # the models its chunks have vectors of
    etag: str | None = None  # an object's, as recorded at submit; None for a file

    def unchanged(self, *, size: int, mtime_ns: int, etag: str | None, sha256: str | None) -> bool:
        """The worker's check (the rule of :mod:`ledger.index.unchanged`): the source it
        read (``size`` and ``mtime_ns`` of the file or of the object's local copy, the
        object's ``etag``) is the one this holder indexed."""
        return (
            self.sha256 is not None
            and self.size == size
            and self.mtime_ns == mtime_ns
            and self.etag == etag
            and sha256 in (None, self.sha256)
        )


@dataclass(frozen=True)
class DocumentFacts:
    """The dedup facts of one claimed document, for its owner: the holders of its source
    and, when its content hash was known at claim, of its content. Read-only, read before
    the processor runs; the finish checks again what may have changed meanwhile."""

    source_holders: tuple[Holder, ...] = ()
    content_holders: tuple[Holder, ...] = ()

    def source_holder(self, model: str | None) -> Holder | None:
        """The newest holder of the source (with ``model`` vectors, when one is named)."""
        held = [h for h in self.source_holders if model is None or model in h.models]
        return max(held, key=lambda h: h.id, default=None)

    def content_holder(self, sha256: str, model: str | None) -> Holder | None:
        """The oldest holder of content ``sha256`` (with ``model`` vectors when named)."""
        held = [
            h
            for h in (*self.content_holders, *self.source_holders)
            if h.sha256 == sha256.lower() and (model is None or model in h.models)
        ]
        return min(held, key=lambda h: h.id, default=None)


NO_FACTS = DocumentFacts()


def skip_reason(kind: str, holder_id: int) -> str:
    """Why a document was skipped: ``kind`` is ``unchanged`` or ``duplicate``."""
    return f"{kind}: same content as document {holder_id}"


__all__ = [
    "NO_FACTS",
    "ChunkRow",
    "ChunkSpool",
    "DocumentFacts",
    "Holder",
    "IndexArtifacts",
    "from_bytes",
    "skip_reason",
    "text_sha256",
    "to_bytes",
]
