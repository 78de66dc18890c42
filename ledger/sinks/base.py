"""The sink contract: what a vector store must do for the ledger to mirror chunks into it.

A sink receives points (one per chunk: a stable id, a vector, a payload) and deletes the
points of a source by its key. The ledger calls it from the sink stage only, with no
transaction open, one call at a time per sink object (a store client need not be
thread-safe), and always again after a crash: so ``upsert`` must be idempotent by point id
and ``delete`` must succeed when there is nothing to delete.

Other stores plug in through the ``ledger.sinks`` entry point group: the entry point's name
is a profile ``kind``, its object a callable taking the :class:`SinkProfile` and returning
a :class:`Sink`.

A store that asks for less traffic (HTTP 429) raises ``SinkError(..., throttled=True,
retry_after=seconds)`` or :class:`ledger.backpressure.Throttled`: its rows come back after
the wait without being charged an attempt, and the stage writes smaller pages to it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

# Point ids are UUIDs (Qdrant takes UUIDs or integers; any store takes a string).
POINT_NAMESPACE = uuid.UUID("6f1d2c1e-6b7a-4d59-9c3e-5a8f0d2b7c41")

# The payload fields every point carries (docs/sinks.md).
PAYLOAD_FIELDS = (
    "text",
    "source_key",
    "display_name",
    "page",
    "char_start",
    "char_end",
    "ordinal",
    "sha256",
    "batch_id",
    "document_id",
)


class SinkError(Exception):
    """A store refused or failed a write. ``permanent``: retrying cannot help (a wrong
    dimension, a refused key), so the row is failed at once with this message.
    ``throttled``: the store asked for less traffic (implied by ``retry_after``, the
    seconds it asked to wait), so the row is rescheduled without spending an attempt."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        throttled: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.throttled = not permanent and (throttled or retry_after is not None)
        self.retry_after = retry_after


@dataclass(frozen=True)
class SinkProfile:
    """An operator-defined sink: its name, kind, and settings (secrets only by reference:
    ``api_key_env`` or ``api_key_file``)."""

    name: str
    kind: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    requires_vectors: bool = True

    def api_key(self) -> str | None:
        """The key the profile refers to, read now (None when it names none)."""
        import os
        from pathlib import Path

        env = self.settings.get("api_key_env")
        if isinstance(env, str):
            value = os.environ.get(env)
            if not value:
                raise SinkError(f"sink {self.name!r}: ${env} is not set", permanent=True)
            return value
        path = self.settings.get("api_key_file")
        if isinstance(path, str):
            try:
                return Path(path).read_text().strip()
            except OSError as exc:
                raise SinkError(
                    f"sink {self.name!r}: cannot read api_key_file: {exc.strerror}",
                    permanent=True,
                ) from exc
        return None


@dataclass(frozen=True)
class SinkPoint:
    """One chunk as a point: ``vector`` is unit-length float32 (None without an embedder)."""

    id: str
    vector: Sequence[float] | None
    payload: Mapping[str, Any]


@runtime_checkable
class Sink(Protocol):
    """What a store does for the ledger (see the module docstring for the guarantees)."""

    def upsert(self, points: Sequence[SinkPoint]) -> None:
        """Insert these points, or replace those with the same id."""
        ...

    def delete(self, source_key: str, *, keep_document: int | None = None, keep: int = 0) -> None:
        """Delete the points whose ``source_key`` is this one, except the first ``keep``
        ordinals of ``keep_document`` (the version just written)."""
        ...

    def close(self) -> None:
        """Release the store's client (files, connections)."""
        ...


def point_id(source_key: str, document_id: int, sha256: str, ordinal: int) -> str:
    """The stable id of a chunk's point: the same version of the same source always gets
    the same ids, so a write replayed after a crash replaces instead of duplicating."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{source_key}:{document_id}:{sha256}:{ordinal}"))


def check_key(source_key: str) -> str:
    """A source key is 64 hex digits: safe to place in a store's filter expression."""
    if len(source_key) != 64 or any(c not in "0123456789abcdef" for c in source_key):
        raise SinkError(f"not a source key: {source_key!r}", permanent=True)
    return source_key
