"""LanceDB sink: an embedded store, a folder of Lance tables (the ``lancedb`` extra).

Upserts are one ``merge_insert`` on the point id per call, so a replay after a crash
replaces rows instead of adding them; deletes are a SQL predicate on ``source_key`` (a
checked hex string, so safe to place in the predicate). The table is created on the first
write with the vector dimension it brings; a later write of another dimension is refused
as permanent (a table of mixed dimensions cannot be searched).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledger.sinks.base import SinkError, SinkPoint, SinkProfile, check_key


class LanceSink:
    """Mirrors chunks into one LanceDB table."""

    def __init__(self, profile: SinkProfile) -> None:
        from ledger.extras import require

        require("lancedb", "lancedb", "pyarrow", what="a LanceDB sink")
        import lancedb

        self.name = profile.name
        self._db: Any = lancedb.connect(str(profile.settings["uri"]))
        self._table_name = str(profile.settings.get("table", "chunks"))
        self._table: Any = None

    def _schema(self, dimension: int) -> Any:
        import pyarrow as pa

        return pa.schema(
            [
                pa.field("id", pa.string(), nullable=False),
                pa.field("vector", pa.list_(pa.float32(), dimension)),
                pa.field("text", pa.string()),
                pa.field("source_key", pa.string()),
                pa.field("display_name", pa.string()),
                pa.field("page", pa.int32()),
                pa.field("char_start", pa.int64()),
                pa.field("char_end", pa.int64()),
                pa.field("ordinal", pa.int32()),
                pa.field("sha256", pa.string()),
                pa.field("batch_id", pa.string()),
                pa.field("document_id", pa.int64()),
            ]
        )

    def _open(self, dimension: int | None) -> Any:
        if self._table is None:
            try:
                self._table = self._db.open_table(self._table_name)
            except ValueError:  # no such table yet (LanceDB's way of saying so)
                if dimension is None:
                    return None  # nothing written yet: nothing to delete
                self._table = self._db.create_table(
                    self._table_name, schema=self._schema(dimension), exist_ok=True
                )
        if dimension is not None:
            have = self._table.schema.field("vector").type.list_size
            if have != dimension:
                raise SinkError(
                    f"sink {self.name!r}: table {self._table_name!r} holds vectors of "
                    f"dimension {have}, this batch's have {dimension}",
                    permanent=True,
                )
        return self._table

    def upsert(self, points: Sequence[SinkPoint]) -> None:
        if not points:
            return
        if any(p.vector is None for p in points):
            raise SinkError(f"sink {self.name!r} needs a vector for every chunk", permanent=True)
        dimension = len(points[0].vector or ())
        table = self._open(dimension)
        rows = [{"id": p.id, "vector": list(p.vector or ()), **p.payload} for p in points]
        (
            table.merge_insert("id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(rows)
        )

    def delete(self, source_key: str, *, keep_document: int | None = None, keep: int = 0) -> None:
        table = self._open(None)
        if table is None:
            return
        predicate = f"source_key = '{check_key(source_key)}'"
        if keep_document is not None:
            predicate += f" AND NOT (document_id = {int(keep_document)} AND ordinal < {int(keep)})"
        table.delete(predicate)

    def close(self) -> None:
        self._table = None


def build(profile: SinkProfile) -> LanceSink:
    """The ``lancedb`` kind."""
    return LanceSink(profile)
