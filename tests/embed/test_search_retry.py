"""Embedding the query of a vector or hybrid search retries 429s and 5xx within a deadline:
one 429 is waited out, a service that never stops gets a clear 503 (API) or exit code 4
(CLI), never a traceback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from ledger.app import Ledger
from ledger.embedders.search import search
from ledger.model import BatchSpec
from tests.embed.server import EmbeddingServer
from tests.embed.support import embedder_options, embedder_profiles, make_corpus, search_api
from tests.pipeline.support import run_batch

REPO = Path(__file__).resolve().parents[2]
QUERY = "bishop gambit rook pawn checkmate knight castling endgame"


async def test_one_429_on_the_query_is_waited_out(
    led: Ledger, tmp_path: Path, server: EmbeddingServer
) -> None:
    corpus = make_corpus(tmp_path / "docs", per_topic=1)
    await run_batch(led, BatchSpec(id="s", options=embedder_options(server.base_url)), corpus)
    for mode in ("hybrid", "vector"):
        server.script.extend([("429", 0.2), ("500",)])
        before = len(server.requests)
        hits = await search(led, QUERY, mode=mode, k=2, deadline=10.0)
        assert Path(hits[0].source).name.startswith("chess"), (mode, hits)
        assert server.statuses()[before:] == [429, 500, 200]


async def test_a_query_throttled_past_the_deadline_is_a_clear_error(
    tmp_path: Path, server: EmbeddingServer
) -> None:
    from tests.api.conftest import stop_server

    env = {
        "LEDGER_EMBEDDERS": embedder_profiles(server.base_url),
        "LEDGER_SEARCH_EMBED_DEADLINE_SECONDS": "1",
    }
    api = await search_api(tmp_path, server.base_url, env)
    try:
        server.pattern = [(1, ("429", 0.3))]
        async with api.client() as client:
            response = await client.get(
                "/api/v1/search", params={"q": QUERY, "mode": "hybrid", "k": 2}
            )
            assert response.status_code == 503, response.text
            assert int(response.headers["Retry-After"]) >= 1
            detail = response.json()["detail"]
            assert "embedding the query with bow-64 failed for 1 s" in detail, detail
            assert "429" in detail
            assert len(server.requests) >= 2  # it did try again before giving up

            # The CLI: one line on stderr, exit code 4.
            cli_env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
            cli_env.update(
                {
                    **env,
                    "LEDGER_HOME": str(api.home),
                    "LEDGER_DATABASE_URL": api.db_url,
                    "PYTHONPATH": str(REPO),
                }
            )
            proc = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "ledger", "search", "--mode", "hybrid", QUERY],
                env=cli_env,
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
            assert proc.returncode == 4, (proc.stdout, proc.stderr)
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: embedding the query"), lines
            assert "Traceback" not in proc.stderr

            server.pattern = []  # the service recovers: the same search answers
            response = await client.get(
                "/api/v1/search", params={"q": QUERY, "mode": "hybrid", "k": 2}
            )
            assert response.status_code == 200, response.text
    finally:
        await asyncio.to_thread(stop_server, api)
