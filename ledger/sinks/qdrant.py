"""Qdrant sink: a server by URL (production) or local mode in a folder (the ``qdrant`` extra).

Points are upserted by id with ``wait=True`` (the call returns once they are stored, so the
ledger records only what the store holds); deletes are a payload filter on ``source_key``.
The collection is created on the first write (cosine distance, the dimension of the
vectors); a write of another dimension is refused as permanent, and so are refused keys
(HTTP 401/403) and other 4xx answers; connection errors and 5xx are retried. A 429 (or
gRPC's RESOURCE_EXHAUSTED) is a throttle, with the server's Retry-After when it gives one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ledger.backoff import parse_retry_after
from ledger.sinks.base import SinkError, SinkPoint, SinkProfile, check_key

T = TypeVar("T")


class QdrantSink:
    """Mirrors chunks into one Qdrant collection."""

    def __init__(self, profile: SinkProfile) -> None:
        from ledger.extras import require

        require("qdrant", "qdrant_client", what="a Qdrant sink")
        from qdrant_client import QdrantClient

        self.name = profile.name
        settings = profile.settings
        self.collection = str(settings.get("collection", "chunks"))
        if "url" in settings:
            self._client: Any = QdrantClient(url=str(settings["url"]), api_key=profile.api_key())
        elif "path" in settings:
            self._client = QdrantClient(path=str(settings["path"]))
        else:
            self._client = QdrantClient(location=":memory:")
        self._dimension: int | None = None
        self._remote = "url" in settings  # local mode has no payload indexes

    def _call(self, what: str, action: Callable[[], T]) -> T:
        from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
        from qdrant_client.http.exceptions import UnexpectedResponse

        try:
            return action()
        except ResourceExhaustedResponse as exc:  # a 429 with Retry-After, REST or gRPC
            raise SinkError(
                f"sink {self.name!r}: {what}: throttled ({exc})",
                retry_after=float(exc.retry_after_s),
            ) from exc
        except UnexpectedResponse as exc:
            code = exc.status_code
            if code == 429:
                raise SinkError(
                    f"sink {self.name!r}: {what}: HTTP 429",
                    throttled=True,
                    retry_after=parse_retry_after(exc.headers.get("retry-after")),
                ) from exc
            permanent = code is not None and 400 <= code < 500 and code not in (408, 429)
            reason = "the key was refused" if code in (401, 403) else f"HTTP {code}"
            raise SinkError(f"sink {self.name!r}: {what}: {reason}", permanent=permanent) from exc
        except (ValueError, AssertionError) as exc:  # local mode's refusals (a wrong dimension)
            raise SinkError(f"sink {self.name!r}: {what}: {exc}", permanent=True) from exc

    def _ensure(self, dimension: int) -> None:
        from qdrant_client import models

        client, name = self._client, self.collection
        if self._dimension is None:
            if self._call("look up collection", lambda: client.collection_exists(name)):
                info = self._call("read collection", lambda: client.get_collection(name))
                vectors = info.config.params.vectors
                self._dimension = int(vectors.size) if hasattr(vectors, "size") else None
            else:
                self._call(
                    "create collection",
                    lambda: self._client.create_collection(
                        self.collection,
                        vectors_config=models.VectorParams(
                            size=dimension, distance=models.Distance.COSINE
                        ),
                    ),
                )
                if self._remote:
                    # Deletes filter on these: without an index a server scans the collection.
                    self._index_payload(("source_key", "keyword"), ("document_id", "integer"))
                self._dimension = dimension
        if self._dimension != dimension:
            raise SinkError(
                f"sink {self.name!r}: collection {self.collection!r} holds vectors of "
                f"dimension {self._dimension}, this batch's have {dimension}",
                permanent=True,
            )

    def _index_payload(self, *fields: tuple[str, str]) -> None:
        from qdrant_client import models

        for field, kind in fields:
            schema = models.PayloadSchemaType(kind)

            def create(field: str = field, schema: models.PayloadSchemaType = schema) -> Any:
                return self._client.create_payload_index(self.collection, field, schema)

            self._call("index payload", create)

    def upsert(self, points: Sequence[SinkPoint]) -> None:
        from qdrant_client import models

        if not points:
            return
        if any(p.vector is None for p in points):
            raise SinkError(f"sink {self.name!r} needs a vector for every chunk", permanent=True)
        self._ensure(len(points[0].vector or ()))
        structs = [
            models.PointStruct(id=p.id, vector=list(p.vector or ()), payload=dict(p.payload))
            for p in points
        ]
        self._call(
            "upsert",
            lambda: self._client.upsert(self.collection, points=structs, wait=True),
        )

    def delete(self, source_key: str, *, keep_document: int | None = None, keep: int = 0) -> None:
        from qdrant_client import models

        exists = self._call(
            "look up collection", lambda: self._client.collection_exists(self.collection)
        )
        if not exists:
            return
        same_source = models.FieldCondition(
            key="source_key", match=models.MatchValue(value=check_key(source_key))
        )
        kept: list[Any] = []
        if keep_document is not None:
            kept = [
                models.Filter(
                    must=[
                        models.FieldCondition(
                            key="document_id", match=models.MatchValue(value=keep_document)
                        ),
                        models.FieldCondition(key="ordinal", range=models.Range(lt=keep)),
                    ]
                )
            ]
        selector = models.FilterSelector(filter=models.Filter(must=[same_source], must_not=kept))
        self._call(
            "delete",
            lambda: self._client.delete(self.collection, points_selector=selector, wait=True),
        )

    def close(self) -> None:
        self._client.close()


def build(profile: SinkProfile) -> QdrantSink:
    """The ``qdrant`` kind."""
    return QdrantSink(profile)
