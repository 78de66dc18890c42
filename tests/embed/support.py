"""Corpus and SQL checks of the embedding tests."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.conftest import sql

TOPICS = {
    "astronomy": "telescope galaxy nebula orbit comet planet star eclipse meteor quasar",
    "cooking": "flour butter oven simmer garlic onion recipe saucepan knead bake",
    "sailing": "mast keel harbour anchor tide rudder starboard hull regatta spinnaker",
    "gardening": "compost seedling prune soil tulip hedge mulch trowel greenhouse bulb",
    "chess": "bishop castling gambit endgame pawn checkmate rook opening knight queen",
    "geology": "basalt sediment fault magma granite fossil erosion strata quartz mantle",
}
COMMON = [
    *("the", "a", "of", "and", "to", "in", "is", "was", "for"),
    *("on", "with", "as", "by", "that", "this", "it", "from", "at"),
]


def make_corpus(folder: Path, per_topic: int = 2, seed: int = 7) -> list[Path]:
    """Text files on distinct topics, a few hundred characters to a kilobyte each."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for topic, words in TOPICS.items():
        vocab = words.split()
        for n in range(per_topic):
            paragraphs = []
            for _ in range(rng.randint(2, 4)):
                sentences = []
                for _ in range(rng.randint(2, 4)):
                    picked = [
                        rng.choice(vocab) if rng.random() < 0.5 else rng.choice(COMMON)
                        for _ in range(rng.randint(6, 12))
                    ]
                    sentences.append(" ".join(picked).capitalize() + ".")
                paragraphs.append(" ".join(sentences))
            path = folder / f"{topic}-{n}.txt"
            path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
            paths.append(path)
    return paths


def embedder_options(base_url: str, **extra: Any) -> dict[str, Any]:
    from tests.embed.server import MODEL

    options = {
        "kind": "openai",
        "base_url": base_url,
        "model": MODEL,
        "batch_size": 4,
        "concurrency": 2,
        "timeout": 1.0,
        "max_tokens": 64,
    }
    options.update(extra)
    return {"embedder": options}


PROFILE = "bow"


def embedder_profiles(base_url: str, **extra: Any) -> str:
    """``LEDGER_EMBEDDERS`` (inline JSON) with one profile, ``bow``, for the test server:
    the settings of :func:`embedder_options`, with no key unless ``extra`` names a source."""
    settings = dict(embedder_options(base_url)["embedder"])
    settings.update(extra)
    if not {"api_key_env", "api_key_file"} & set(settings):
        settings["auth"] = "none"
    return json.dumps({PROFILE: settings})


async def until(predicate: Callable[[], Awaitable[bool]], seconds: float = 60.0) -> None:
    """Poll ``predicate`` until it holds (fails the test after ``seconds``)."""
    for _ in range(int(seconds / 0.02)):
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not reached within {seconds} s")


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def check_vector_invariants(url: str) -> dict[str, int]:
    """SQL checks (``url``: synchronous) that hold at any moment:

    - every chunk of a done document of an embedder batch has exactly one vector, of its
      batch's model; documents of other batches have none;
    - every stored vector equals the cached vector of its text (so no chunk was embedded
      with another text than its own);
    """
    rows = sql(
        url,
        "SELECT c.id, c.text, b.options, v.model, v.vector FROM chunks c"
        " JOIN documents d ON d.id = c.document_id JOIN batches b ON b.id = d.batch_id"
        " LEFT JOIN chunk_vectors v ON v.chunk_id = c.id",
    )
    import hashlib

    cache = {
        (r[0], r[1]): bytes(r[2])
        for r in sql(url, "SELECT text_sha256, model, vector FROM embedding_cache")
    }
    seen: set[int] = set()
    for chunk_id, text, options, model, vector in rows:
        assert chunk_id not in seen, f"chunk {chunk_id} has two vectors"
        seen.add(chunk_id)
        spec = (_json(options) or {}).get("embedder")
        if spec is None or spec.get("kind", "none") == "none":
            assert model is None, chunk_id
            continue
        assert model is not None, f"chunk {chunk_id} of an embedder batch has no vector"
        key = hashlib.sha256(text.encode()).hexdigest()
        assert cache[(key, model)] == bytes(vector), chunk_id
    return {"chunks": len(rows), "cache": len(cache)}


async def search_api(tmp: Path, base_url: str, env: dict[str, str] | None = None) -> Any:
    """A real API server whose operator profile ``bow`` embeds with ``base_url``, over a
    database holding one embedded document per topic (batch ``api``); stop it with
    ``tests.api.conftest.stop_server``."""
    from ledger.app import Ledger
    from ledger.model import BatchSpec
    from tests.api.conftest import start_server
    from tests.pipeline.support import pipeline_settings, run_batch

    profiles = embedder_profiles(base_url)
    api = await asyncio.to_thread(
        start_server, tmp / "api", {"LEDGER_EMBEDDERS": profiles, **(env or {})}
    )
    led = await Ledger.open(pipeline_settings(api.db_url, api.home, embedders=profiles))
    try:
        corpus = make_corpus(tmp / "docs", per_topic=1)
        await run_batch(led, BatchSpec(id="api", options={"embedder": PROFILE}), corpus)
    finally:
        await led.close()
    return api
