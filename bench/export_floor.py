"""The floor of the export benchmark (bench/export.py): the same rows, the cheapest way.

Run by export.py in a fresh child: python bench/export_floor.py FORMAT text|vectors DB
BATCH MODEL SCHEMA ROW_GROUP OUT

One raw ``sqlite3`` SELECT of the chunk columns the ledger exports (with the document's
source and hash, and one model's vector when asked), streamed: each row gets its text's
SHA-256 as the ledger computes it and is written with ``json.dumps`` (JSON Lines) or
pyarrow's ``ParquetWriter`` in row groups of ROW_GROUP rows with the ledger's Parquet
schema (SCHEMA: the serialized schema, so this process imports nothing of the ledger).
"""

from __future__ import annotations

import array
import hashlib
import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

QUERY = """
SELECT c.id, c.document_id, c.batch_id, c.ordinal, c.text, c.page, c.char_start,
       c.char_end, d.source, d.source_sha256, v.vector
FROM chunks c JOIN documents d ON d.id = c.document_id
LEFT JOIN chunk_vectors v ON v.chunk_id = c.id AND v.model = ?
WHERE c.batch_id = ? ORDER BY c.id
"""


def rows(db: Path, batch: str, model: str | None) -> Iterator[dict[str, Any]]:
    conn = sqlite3.connect(db)
    try:
        for row in conn.execute(QUERY, (model or "", batch)):
            text = row[4]
            vectors = None
            if model is not None:
                vectors = {model: array.array("f", row[10]).tolist()} if row[10] else {}
            yield {
                "chunk_id": row[0],
                "document_id": row[1],
                "batch_id": row[2],
                "ordinal": row[3],
                "text": text,
                "page": row[5],
                "char_start": row[6],
                "char_end": row[7],
                "source_name": row[8],
                "document_sha256": row[9],
                "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
                "vectors": vectors,
            }
    finally:
        conn.close()


def jsonl(source: Iterator[dict[str, Any]], out: Path) -> None:
    with out.open("w", encoding="utf-8") as stream:
        for row in source:
            stream.write(json.dumps(row, separators=(",", ":")) + "\n")


def parquet(source: Iterator[dict[str, Any]], out: Path, schema_file: Path, size: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.ipc.read_schema(pa.py_buffer(schema_file.read_bytes()))
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        group: list[dict[str, Any]] = []
        for row in source:
            if row["vectors"] is not None:
                row["vectors"] = list(row["vectors"].items())
            group.append(row)
            if len(group) == size:
                writer.write_table(pa.Table.from_pylist(group, schema=schema))
                group = []
        if group:
            writer.write_table(pa.Table.from_pylist(group, schema=schema))


def main() -> None:
    fmt, flag, db, batch, model, schema, size, out = sys.argv[1:]
    source = rows(Path(db), batch, model if flag == "vectors" else None)
    if fmt == "jsonl":
        jsonl(source, Path(out))
    else:
        parquet(source, Path(out), Path(schema), int(size))


if __name__ == "__main__":
    main()
