"""Sink tests' helpers: operator profiles for real embedded stores in a temp folder, what
the stores hold, and what they must hold according to the ledger's SQL."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ledger.index.citations import source_name
from ledger.sinks.base import PAYLOAD_FIELDS, point_id
from ledger.sinks.stage import floats_of
from tests.conftest import sql

KINDS = ("lance", "qdrant")
TABLE = "chunks"


def sink_profiles(folder: Path) -> str:
    """``LEDGER_SINKS`` (inline JSON): ``lance`` (LanceDB) and ``qdrant`` (local mode)."""
    return json.dumps(
        {
            "lance": {"kind": "lancedb", "uri": str(folder / "lance"), "table": TABLE},
            "qdrant": {"kind": "qdrant", "path": str(folder / "qdrant"), "collection": TABLE},
        }
    )


Points = dict[str, tuple[list[float], dict[str, Any]]]


def stored_points(kind: str, folder: Path) -> Points:
    """Every point the store holds: id -> (vector, payload). The sink stage must be closed
    (Qdrant's local mode lets one client at a time open its folder)."""
    if kind == "lance":
        import lancedb

        db = lancedb.connect(str(folder / "lance"))
        try:
            rows = db.open_table(TABLE).to_arrow().to_pylist()
        except ValueError:  # no table: nothing was ever written
            return {}
        found: Points = {}
        for row in rows:
            assert row["id"] not in found, f"duplicate point {row['id']}"
            payload = {k: row[k] for k in PAYLOAD_FIELDS}
            found[row["id"]] = (list(row["vector"]), payload)
        return found
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(folder / "qdrant"))
    try:
        if not client.collection_exists(TABLE):
            return {}
        points, _ = client.scroll(TABLE, limit=100_000, with_vectors=True, with_payload=True)
        return {str(p.id): (list(p.vector), dict(p.payload or {})) for p in points}  # type: ignore[arg-type]
    finally:
        client.close()


def expected_points(url: str, sink: str) -> Points:
    """What ``sink`` must hold by the ledger (``url``: synchronous): the chunks of every
    document its rows name, as they are in SQL, vectors included."""
    rows = sql(
        url,
        "SELECT s.source_key, d.id, d.batch_id, d.source_sha256, c.ordinal, c.text, c.page,"
        " c.char_start, c.char_end, v.vector, d.source, d.meta, b.roots FROM sink_rows s"
        " JOIN documents d ON d.id = s.document_id JOIN chunks c ON c.document_id = d.id"
        " JOIN batches b ON b.id = d.batch_id"
        " LEFT JOIN chunk_vectors v ON v.chunk_id = c.id WHERE s.sink = :sink",
        sink=sink,
    )
    found: Points = {}
    for key, doc, batch, sha, ordinal, text, page, start, end, vector, *cited in rows:
        ident = point_id(key, doc, sha, ordinal)
        source, meta, roots = (_json(v) for v in cited)
        payload = {
            "display_name": source_name(source, meta, roots),
            "text": text,
            "source_key": key,
            "page": page,
            "char_start": start,
            "char_end": end,
            "ordinal": ordinal,
            "sha256": sha,
            "batch_id": batch,
            "document_id": doc,
        }
        found[ident] = (floats_of(None if vector is None else bytes(vector)) or [], payload)
    return found


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value


def assert_mirrored(kind: str, folder: Path, url: str) -> int:
    """The store holds exactly the ledger's points: same ids (none missing, none extra),
    payloads equal, vectors equal to float32 precision. Returns how many."""
    held = stored_points(kind, folder)
    wanted = expected_points(url, kind)
    assert set(held) == set(wanted), (
        f"{kind}: {len(set(held) - set(wanted))} orphan, {len(set(wanted) - set(held))} missing"
    )
    for ident, (vector, payload) in wanted.items():
        got_vector, got_payload = held[ident]
        for field, value in payload.items():
            assert got_payload[field] == value, (kind, ident, field)
        assert len(got_vector) == len(vector)
        pairs = zip(got_vector, vector, strict=True)
        assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in pairs), (kind, ident)
    return len(wanted)
