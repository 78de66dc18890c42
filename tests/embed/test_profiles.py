"""Embedders are operator profiles: API callers pick one by name and can never make the
server send document text, a query or a key to an address of their choosing. Real servers:
the ledger API (uvicorn, in-process workers) and OpenAI-compatible embedding servers on
loopback ports, one of them the attacker's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.app import Ledger
from ledger.embedders.http import HttpEmbedder
from ledger.embedders.profiles import ProfileError, load_profiles
from ledger.model import BatchSpec
from tests.api.conftest import Server, start_server, stop_server
from tests.conftest import sql
from tests.embed.server import MODEL, EmbeddingServer
from tests.embed.support import PROFILE, embedder_options, embedder_profiles, make_corpus
from tests.pipeline.support import pipeline_settings, run_batch, sync_url_of

KEY_VARIABLE = "LEDGER_TEST_EMBED_KEY"
KEY = "s3cret-of-the-operator"


@pytest.fixture
def attacker() -> Iterator[EmbeddingServer]:
    srv = EmbeddingServer(max_tokens=64).start()
    try:
        yield srv
    finally:
        srv.down()


@pytest.fixture
def profiled(tmp_path: Path, server: EmbeddingServer) -> Iterator[Server]:
    """An API server with workers whose one profile, ``bow``, embeds with ``server`` and
    sends the key from ``KEY_VARIABLE``."""
    srv = start_server(
        tmp_path / "api",
        {
            "LEDGER_AUTH": "on",
            "LEDGER_SERVE_WORKERS": "true",
            "LEDGER_POLL_SECONDS": "0.05",
            "LEDGER_PROCESS_WORKERS": "1",
            "LEDGER_EMBEDDERS": embedder_profiles(server.base_url, api_key_env=KEY_VARIABLE),
            KEY_VARIABLE: KEY,
        },
        tenants=("acme",),
    )
    yield srv
    stop_server(srv)


def _refused_options(attacker_url: str) -> list[dict[str, Any]]:
    inline = embedder_options(attacker_url, api_key_env=KEY_VARIABLE)
    return [
        inline,  # the reported attack: an inline embedder with the server's variable
        {"embedder": {"kind": "local"}},  # inline, even without a URL
        {"embedder": PROFILE, "extra": [{"base_url": attacker_url}]},  # nested anywhere
        {"embedder": PROFILE, "api_key": "sk-1"},
        {"embedder": PROFILE, "settings": {"API-KEY-ENV": KEY_VARIABLE}},
        {"embedder": "no-such-profile"},
        {"chunk_size": 1},  # 22 KB made 18,890 chunks
        {"chunk_size": 64, "chunk_overlap": 33},  # more than half the chunk
        {"chunk_size": "big"},
        {"colour": "red"},  # unknown ingest option
    ]


async def test_inline_embedders_secrets_and_bad_options_are_422_with_no_batch(
    profiled: Server, attacker: EmbeddingServer
) -> None:
    url = sync_url_of(profiled.db_url)
    async with profiled.client("acme") as client:
        for n, options in enumerate(_refused_options(attacker.base_url)):
            folder = profiled.root / f"refused-{n}"
            folder.mkdir()
            (folder / "a.txt").write_text("rook pawn bishop " * 20)
            body = {"id": f"refused-{n}", "options": options, "paths": [str(folder)]}
            response = await client.post("/api/v1/batches", json=body)
            assert response.status_code == 422, (options, response.text)
            assert sql(url, "SELECT id FROM batches WHERE id = :b", b=f"refused-{n}") == []
        bad_sleep = await client.post(
            "/api/v1/batches", json={"id": "s", "processor": "sleep", "options": {"seconds": -1}}
        )
        assert bad_sleep.status_code == 422, bad_sleep.text
        for params in (
            {"q": "rook", "mode": "vector", "base_url": attacker.base_url},
            {"q": "rook", "mode": "vector", "api_key_env": KEY_VARIABLE},
            {"q": "rook", "mode": "vector", "embedder": "no-such-profile"},
        ):
            response = await client.get("/api/v1/search", params=params)
            assert response.status_code == 422, (params, response.text)
    await asyncio.sleep(0.2)  # what a worker would have sent, had a batch been made
    assert attacker.requests == []


async def test_a_profile_embeds_end_to_end_with_the_operators_key(
    profiled: Server, server: EmbeddingServer, attacker: EmbeddingServer
) -> None:
    folder = profiled.root / "docs"
    make_corpus(folder, per_topic=1)
    async with profiled.client("acme") as client:
        body = {"id": "prof", "options": {"embedder": PROFILE}, "paths": [str(folder)]}
        created = await client.post("/api/v1/batches", json=body)
        assert created.status_code == 201, created.text
        for _ in range(1200):
            batch = (await client.get("/api/v1/batches/prof")).json()["batch"]
            if batch["complete"]:
                break
            await asyncio.sleep(0.05)
        assert {k: v for k, v in batch["counts"].items() if v} == {"done": 6}, batch
        for params in (
            {"q": "bishop rook pawn", "mode": "vector", "k": "1"},
            {"q": "bishop rook pawn", "mode": "hybrid", "k": "1", "embedder": PROFILE},
        ):
            found = await client.get("/api/v1/search", params=params)
            assert found.status_code == 200, found.text
            assert Path(found.json()["hits"][0]["source"]).name.startswith("chess")
    # Stored options hold the profile's name, not its settings.
    (options,) = sql(sync_url_of(profiled.db_url), "SELECT options FROM batches")[0]
    stored = json.loads(options) if isinstance(options, str) else options
    assert stored == {"embedder": PROFILE}
    assert server.requests and all(
        r["authorization"] == f"Bearer {KEY}" for r in server.requests
    ), server.requests[:2]
    assert attacker.requests == []


async def test_an_api_search_never_uses_a_batchs_inline_embedder(
    tmp_path: Path, server: EmbeddingServer, attacker: EmbeddingServer
) -> None:
    """Vectors made by the operator's CLI with inline settings: an API search does not
    send the query (nor the key) to the address those settings name."""
    profiles = embedder_profiles(server.base_url)
    api = await asyncio.to_thread(start_server, tmp_path / "api", {"LEDGER_EMBEDDERS": profiles})
    try:
        async with await Ledger.open(pipeline_settings(api.db_url, api.home)) as led:
            inline = embedder_options(attacker.base_url)  # the same model, another address
            corpus = make_corpus(tmp_path / "docs", per_topic=1)
            await run_batch(led, BatchSpec(id="cli", options=inline), corpus)
        sent = len(attacker.requests)
        assert sent > 0  # the operator's own inline settings still work
        async with api.client() as client:
            params = {"q": "bishop rook pawn", "mode": "vector", "k": "1"}
            refused = await client.get("/api/v1/search", params=params)
            assert refused.status_code == 422, refused.text
            assert "profile" in refused.json()["detail"]
            named = await client.get("/api/v1/search", params={**params, "embedder": PROFILE})
            assert named.status_code == 200, named.text
        assert len(attacker.requests) == sent
        assert server.requests
    finally:
        await asyncio.to_thread(stop_server, api)


def test_profiles_load_from_toml_json_or_inline(tmp_path: Path) -> None:
    toml = tmp_path / "embedders.toml"
    toml.write_text(
        '[remote]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
        f'model = "{MODEL}"\napi_key_file = "{tmp_path / "key"}"\nmax_tokens = 64\n'
    )
    loaded = load_profiles(str(toml))
    remote = loaded["remote"]
    assert remote is not None and remote.base_url == "http://127.0.0.1:9/v1"
    assert remote.api_key_file == str(tmp_path / "key")
    assert set(loaded) == {"remote", "local", "none"}
    as_json = tmp_path / "embedders.json"
    as_json.write_text(json.dumps({"open": {"kind": "openai", "base_url": "https://e.example/v1",
                                            "model": "m", "auth": "none"}}))  # fmt: skip
    assert load_profiles(str(as_json))["open"] is not None
    assert load_profiles('{"quiet": {"kind": "none"}}')["quiet"] is None
    # The key file is read when a request is made, and sent as the bearer token.
    (tmp_path / "key").write_text("from-a-file\n")
    assert HttpEmbedder(remote)._headers()["Authorization"] == "Bearer from-a-file"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('{"x": {"kind": "openai", "base_url": "http://h/v1", "model": "m"}}', "key source"),
        (
            '{"x": {"kind": "openai", "base_url": "http://h/v1", "model": "m", '
            '"auth": "none", "api_key_env": "K"}}',
            "key source",
        ),
        ('{"x y": {"kind": "local"}}', "not a plain name"),
        ('{"x": {"kind": "magic"}}', "kind"),
        ('{"x": {"kind": "local", "api_key_file": "/k"}}', "only kind openai"),
        ("[1, 2]", "must map profile names"),
        ("{not json", "not valid JSON or TOML"),
        ("/nonexistent/embedders.toml", "cannot read"),
    ],
)
def test_bad_profiles_are_refused_with_a_message(source: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        load_profiles(source)


def test_the_settings_take_the_variable() -> None:
    from ledger.settings import Settings

    settings = Settings(embedders='{"a": {"kind": "local"}}', processors="x=m:f, n")  # type: ignore[arg-type]
    assert settings.embedders is not None and settings.processors == ["x=m:f", "n"]
    with pytest.raises(ValueError, match="LEDGER_PROCESSORS"):
        Settings(processors="x=y")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="LEDGER_PROCESSORS"):
        Settings(processors="sys:exit()")  # type: ignore[arg-type]


def test_the_operators_cli_still_takes_inline_embedder_settings(
    tmp_path: Path, server: EmbeddingServer
) -> None:
    import os
    import subprocess
    import sys

    folder = tmp_path / "docs"
    make_corpus(folder, per_topic=1)
    inline = embedder_options(server.base_url, api_key_env=KEY_VARIABLE)["embedder"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_HOME=str(tmp_path / "home"), LEDGER_PROCESS_WORKERS="1")
    env[KEY_VARIABLE] = KEY
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        [sys.executable, "-m", "ledger", "ingest", str(folder),
         "-o", f"embedder={json.dumps(inline)}"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(server.delivered) > 0
    assert all(r["authorization"] == f"Bearer {KEY}" for r in server.requests)
