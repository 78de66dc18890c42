"""Embedding through the ledger versus the embedder alone, with the local model.

    python bench/embed.py bench/corpus/data [--files 40] [--max-bytes 12000]
                          [--json bench/results/embed.json]

Needs the local-embed extra. In one process, same chunk texts, model loaded once:

- model alone: ``SentenceTransformer.encode`` over the distinct chunk texts in batches of
  16 (measured before and after the ledger run; the mean is the reference);
- ledger: a fresh SQLite ledger, a batch with ``{"embedder": {"kind": "local"}}``, a Worker
  until complete (extraction in the pool, cache lookups, embedding, chunks + vectors stored);
- unchanged re-run: a second batch over the same files;
- re-parsed re-run: ``reprocess: true`` (every chunk parsed again, every vector a cache hit);
- changed re-run: one file gets a new paragraph.

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ledger.app import Ledger
from ledger.embedders import EmbedderSpec
from ledger.embedders.local import load_model
from ledger.model import BatchSpec, SourceSpec
from ledger.processors.ingest import process_file
from ledger.processors.ingest.config import IngestConfig
from ledger.processors.ingest.spool import iter_spool
from ledger.settings import Settings
from ledger.worker.runtime import Worker

EMBEDDER = {"kind": "local"}


def pick_files(folder: Path, count: int, max_bytes: int) -> list[Path]:
    files = sorted(
        p
        for sub in ("md", "txt", "html")
        for p in (folder / sub).glob("*")
        if p.is_file() and p.stat().st_size <= max_bytes
    )
    return files[:count]


def chunk_texts(files: list[Path], spool: Path, options: Any = None) -> list[str]:
    options = options or IngestConfig.from_options({"embedder": EMBEDDER}).ingest
    texts: list[str] = []
    spool.mkdir(parents=True, exist_ok=True)
    for path in files:
        outcome = process_file(
            str(path),
            expected_size=None,
            expected_mtime_ns=None,
            expected_sha256=None,
            options=options,
            spool_dir=str(spool),
        )
        for batch in iter_spool(outcome.spool_path):
            texts.extend(c.text for c in batch)
        os.unlink(outcome.spool_path)
    return texts


def over_limit(texts: list[str], limit: int = 256) -> float:
    """Share of texts longer than ``limit`` tokens (special tokens included)."""
    lengths = [len(ids) for ids in load_model().tokenizer(texts, verbose=False)["input_ids"]]
    return sum(1 for n in lengths if n > limit) / len(lengths)


def model_alone(texts: list[str], *, in_order: bool = False) -> dict[str, Any]:
    """``encode`` over all texts (it sorts them by length: least padding, the best case),
    or, ``in_order``, one call per 16 texts in document order (what a stream of documents
    gives any pipeline)."""
    model = load_model()
    started = time.perf_counter()
    if in_order:
        for i in range(0, len(texts), 16):
            model.encode(
                texts[i : i + 16], batch_size=16, normalize_embeddings=True, show_progress_bar=False
            )
    else:
        model.encode(texts, batch_size=16, normalize_embeddings=True, show_progress_bar=False)
    seconds = time.perf_counter() - started
    return {
        "chunks": len(texts),
        "seconds": round(seconds, 2),
        "chunks_per_second": round(len(texts) / seconds, 2),
    }


async def ledger_run(
    ledger: Ledger, batch_id: str, files: list[Path], options: dict[str, Any]
) -> dict[str, Any]:
    sources = [
        SourceSpec(str(p), size=p.stat().st_size, mtime_ns=p.stat().st_mtime_ns) for p in files
    ]
    started = time.perf_counter()
    await ledger.queue.submit(BatchSpec(id=batch_id, options=options), sources)
    stats = await Worker(ledger, batch_ids=[batch_id]).run(until_complete=True)
    seconds = time.perf_counter() - started
    embedded = hits = chunks = 0
    page = await ledger.reads.documents(batch_id, limit=1000)
    for doc in page.items:
        result = doc.result or {}
        chunks += int(result.get("chunks", 0))
        embedded += int(result.get("embedded", 0))
        hits += int(result.get("cache_hits", 0))
    return {
        "batch": batch_id,
        "seconds": round(seconds, 2),
        "done": stats.done,
        "skipped": stats.skipped,
        "failed": stats.failed,
        "chunks": chunks,
        "embedded": embedded,
        "cache_hits": hits,
        "chunks_per_second": round(chunks / seconds, 2) if chunks else None,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--max-bytes", type=int, default=12_000)
    parser.add_argument("--json", type=Path, default=Path("bench/results/embed.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        files_dir = Path(tmp) / "files"
        files_dir.mkdir()
        files = []
        for path in pick_files(args.corpus, args.files, args.max_bytes):
            copy = files_dir / f"{path.parent.name}-{path.name}"
            copy.write_bytes(path.read_bytes())
            files.append(copy)
        texts = list(dict.fromkeys(chunk_texts(files, Path(tmp) / "spool")))
        load_started = time.perf_counter()
        load_model()
        load_seconds = time.perf_counter() - load_started
        from ledger.processors.ingest import IngestOptions

        plain = chunk_texts(files, Path(tmp) / "spool", IngestOptions())
        overflow = {
            "chunks_1000_chars_over_256_tokens": round(over_limit(plain), 3),
            "chunks_sized_for_the_model_over_256_tokens": round(over_limit(texts), 3),
        }
        model_alone(texts[:32])  # warm-up
        before = model_alone(texts)
        before_in_order = model_alone(texts, in_order=True)

        settings = Settings(
            home=Path(tmp) / "home",
            process_workers=2,
            commit_interval_seconds=0.01,
            poll_seconds=0.05,
        )
        async with await Ledger.open(settings, migrate=True) as ledger:
            first = await ledger_run(ledger, "embed", files, {"embedder": EMBEDDER})
            after = model_alone(texts)
            after_in_order = model_alone(texts, in_order=True)
            unchanged = await ledger_run(ledger, "unchanged", files, {"embedder": EMBEDDER})
            reparsed = await ledger_run(
                ledger, "reparsed", files, {"embedder": EMBEDDER, "reprocess": True}
            )
            edited = files[len(files) // 2]
            with edited.open("a", encoding="utf-8") as out:
                out.write("\n\nA new closing paragraph, added to measure a changed re-run.\n")
            changed = await ledger_run(ledger, "changed", files, {"embedder": EMBEDDER})

    reference = (before["chunks_per_second"] + after["chunks_per_second"]) / 2
    ratio = first["chunks_per_second"] / reference
    in_order = (before_in_order["chunks_per_second"] + after_in_order["chunks_per_second"]) / 2
    ratio_in_order = first["chunks_per_second"] / in_order
    spec = EmbedderSpec.from_options(EMBEDDER)
    assert spec is not None
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": os.getloadavg(),
        },
        "files": len(files),
        "distinct_chunks": len(texts),
        "chunk_chars": spec.chunk_chars,
        "model_load_seconds": round(load_seconds, 2),
        "model_alone_before": before,
        "model_alone_after": after,
        "model_alone_in_order_before": before_in_order,
        "model_alone_in_order_after": after_in_order,
        **overflow,
        "ledger": first,
        "ledger_vs_model": round(ratio, 3),
        "ledger_vs_model_in_order": round(ratio_in_order, 3),
        "unchanged_rerun": {**unchanged, "calls_saved": first["embedded"]},
        "reparsed_rerun": {**reparsed, "calls_saved": reparsed["cache_hits"]},
        "changed_rerun": {**changed, "calls_saved": first["embedded"] - changed["embedded"]},
    }
    print(f"{'run':<40}{'chunks':>8}{'sent':>8}{'hits':>8}{'s':>9}{'chunks/s':>10}")
    print(
        f"{'model alone (before)':<40}{before['chunks']:>8}{'':>8}{'':>8}"
        f"{before['seconds']:>9}{before['chunks_per_second']:>10}"
    )
    print(
        f"{'model alone (after)':<40}{after['chunks']:>8}{'':>8}{'':>8}"
        f"{after['seconds']:>9}{after['chunks_per_second']:>10}"
    )
    for name, run in (
        ("model alone, batches in order (before)", before_in_order),
        ("model alone, batches in order (after)", after_in_order),
    ):
        print(
            f"{name:<40}{run['chunks']:>8}{'':>8}{'':>8}"
            f"{run['seconds']:>9}{run['chunks_per_second']:>10}"
        )
    for name, run in (
        ("through the ledger", first),
        ("unchanged re-run", unchanged),
        ("re-parsed re-run (reprocess)", reparsed),
        ("one file changed", changed),
    ):
        print(
            f"{name:<40}{run['chunks']:>8}{run['embedded']:>8}{run['cache_hits']:>8}"
            f"{run['seconds']:>9}{run['chunks_per_second'] or '-':>10}"
        )
    print(
        f"ledger / model alone (length-sorted): {ratio:.1%}; "
        f"ledger / model alone (in order): {ratio_in_order:.1%}"
    )
    print(f"over 256 tokens: {overflow}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
