"""Sinks are operator profiles: callers pick them by name, never give a URL, path or key.

Profile validation, the API (a real server with in-process workers and sink stage: a
batch mirrored end to end; bad sink options refused with 422 and no batch made), and the
CLI (``ledger ingest --sink``: a one-line usage error for an unknown name, the status
showing the sink's progress)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import InvalidInput
from ledger.sinks.profiles import SinkProfileError, chosen_sinks, load_profiles
from tests.api.conftest import Server, start_server, stop_server
from tests.cli.conftest import Cli
from tests.conftest import sql
from tests.embed.server import EmbeddingServer
from tests.embed.support import PROFILE, embedder_profiles, make_corpus
from tests.pipeline.support import sync_url_of
from tests.sinks.support import assert_mirrored, sink_profiles, stored_points

pytestmark = pytest.mark.timeout(120)


def test_profiles_load_from_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "sinks.toml"
    toml.write_text(
        '[lance]\nkind = "lancedb"\nuri = "~/vectors"\n\n'
        '[remote]\nkind = "qdrant"\nurl = "https://qdrant.internal:6333"\n'
        'collection = "docs"\napi_key_env = "QDRANT_KEY"\nwrite_size = 200\n'
    )
    loaded = load_profiles(str(toml))
    home_vectors = str(Path("~/vectors").expanduser())
    assert loaded["lance"].settings == {"uri": home_vectors, "table": "chunks"}
    assert loaded["remote"].settings["api_key_env"] == "QDRANT_KEY"
    assert loaded["remote"].settings["write_size"] == 200
    plugin = load_profiles('{"mine": {"kind": "mystore", "requires_vectors": false}}')["mine"]
    assert plugin.requires_vectors is False and plugin.kind == "mystore"
    assert load_profiles(None) == {}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('{"a": {"kind": "lancedb"}}', "needs uri"),
        ('{"a": {"kind": "lancedb", "uri": "/x", "url": "http://h"}}', "unknown settings url"),
        ('{"a": {"kind": "qdrant", "collection": "c"}}', "exactly one of url, path"),
        ('{"a": {"kind": "qdrant", "url": "http://h", "path": "/p"}}', "exactly one of"),
        ('{"a": {"kind": "qdrant", "location": "http://h"}}', 'location can only be ":memory:"'),
        ('{"a": {"kind": "qdrant", "path": "/p", "api_key_env": "K"}}', "only with a url"),
        ('{"a": {"kind": "qdrant", "url": "http://h", "api_key": "sk-1"}}', "unknown settings"),
        ('{"a b": {"kind": "lancedb", "uri": "/x"}}', "not a plain name"),
        ('{"a": {"uri": "/x"}}', "needs a kind"),
        ('{"a": []}', "table of settings"),
        ('{"a": {"kind": "lancedb", "uri": "/x", "write_size": 0}}', "write_size is the most"),
        ('{"a": {"kind": "mystore", "write_size": "many"}}', "from 1 to 100,000"),
        ("[1]", "must map profile names"),
        ("{nope", "not valid JSON or TOML"),
    ],
)
def test_bad_profiles_are_refused_with_a_reason(source: str, message: str) -> None:
    with pytest.raises(SinkProfileError, match=message):
        load_profiles(source)


def test_a_batch_names_known_sinks_and_needs_vectors_for_them(tmp_path: Path) -> None:
    profiles = load_profiles(sink_profiles(tmp_path))
    assert chosen_sinks(["lance", "lance"], profiles, has_embedder=True) == ("lance",)
    with pytest.raises(InvalidInput, match="unknown sink profile 'nope'"):
        chosen_sinks(["nope"], profiles, has_embedder=True)
    with pytest.raises(InvalidInput, match="needs an embedder"):
        chosen_sinks(["qdrant"], profiles, has_embedder=False)
    with pytest.raises(InvalidInput, match="list of sink profile names"):
        chosen_sinks([{"kind": "qdrant", "url": "http://evil"}], profiles, has_embedder=True)


@pytest.fixture
def api(tmp_path: Path, server: EmbeddingServer) -> Iterator[Server]:
    srv = start_server(
        tmp_path / "api",
        {
            "LEDGER_AUTH": "on",
            "LEDGER_SERVE_WORKERS": "true",
            "LEDGER_POLL_SECONDS": "0.05",
            "LEDGER_PROCESS_WORKERS": "1",
            "LEDGER_EMBEDDERS": embedder_profiles(server.base_url),
            "LEDGER_SINKS": sink_profiles(tmp_path / "stores"),
            "LEDGER_SINK_SCAN_SECONDS": "0.1",
        },
        tenants=("acme",),
    )
    yield srv
    stop_server(srv)


def _tus(batch: str, body: bytes, **extra: str) -> dict[str, str]:
    fields = {"batch": batch, "filename": "sky notes.txt", **extra}
    metadata = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in fields.items())
    return {
        "Tus-Resumable": "1.0.0",
        "Upload-Length": str(len(body)),
        "Upload-Metadata": metadata,
        "Content-Type": "application/offset+octet-stream",
    }


def _refused() -> list[dict[str, Any]]:
    return [
        {"embedder": PROFILE, "sinks": ["nope"]},  # unknown profile
        {"sinks": ["lance"]},  # no embedder: nothing to put in a vector store
        {"embedder": PROFILE, "sinks": [{"kind": "qdrant", "url": "http://evil:6333"}]},
        {"embedder": PROFILE, "sinks": [{"kind": "lancedb", "uri": "/tmp/mine"}]},
        {"embedder": PROFILE, "sinks": ["lance"], "sink_url": "http://evil:6333"},
        {"embedder": PROFILE, "sinks": ["lance"], "qdrant": {"api_key": "sk-1"}},
        {"embedder": PROFILE, "sinks": "lance,qdrant"},  # one string: taken as one name
    ]


async def test_the_api_mirrors_a_batch_into_a_named_sink_and_refuses_the_rest(
    api: Server, tmp_path: Path
) -> None:
    url = sync_url_of(api.db_url)
    async with api.client("acme") as client:
        for n, options in enumerate(_refused()):
            folder = api.root / f"refused-{n}"
            folder.mkdir()
            (folder / "a.txt").write_text("rook pawn bishop " * 20)
            body = {"id": f"refused-{n}", "options": options, "paths": [str(folder)]}
            response = await client.post("/api/v1/batches", json=body)
            assert response.status_code == 422, (options, response.text)
        noop = {"id": "noop", "processor": "noop", "options": {"sinks": ["lance"]}}
        response = await client.post("/api/v1/batches", json=noop)
        assert response.status_code == 422 and "ingest" in response.text, response.text
        assert sql(url, "SELECT count(*) FROM batches")[0][0] == 0

        make_corpus(api.root / "docs", per_topic=1)
        body = {
            "id": "mirrored",
            "options": {"embedder": PROFILE, "sinks": ["lance"]},
            "paths": [str(api.root / "docs")],
        }
        created = await client.post("/api/v1/batches", json=body)
        assert created.status_code == 201, created.text
        batch: dict[str, Any] = {}
        for _ in range(1200):
            batch = (await client.get("/api/v1/batches/mirrored")).json()
            sinks = batch.get("sinks", {})
            if batch["complete"] and sinks.get("lance", {}).get("done") == 6:
                break
            await asyncio.sleep(0.05)
        assert batch["sinks"] == {
            "lance": {"pending": 0, "done": 6, "failed": 0, "last_error": None}
        }, batch
        # A tus upload into the batch is mirrored too, cited by its file name (never the
        # path it is stored under); the sinks are the batch's, never the metadata's.
        named = _tus("mirrored", b"x", sinks="lance")
        refused = await client.post("/api/v1/uploads", headers=named)
        assert refused.status_code == 422, refused.text
        text = b"Quasar light crossed the nebula before the comet.\n" * 20
        sent = await client.post("/api/v1/uploads", headers=_tus("mirrored", text), content=text)
        assert sent.status_code == 201, sent.text
        for _ in range(1200):
            batch = (await client.get("/api/v1/batches/mirrored")).json()
            if batch["complete"] and batch["sinks"]["lance"]["done"] == 7:
                break
            await asyncio.sleep(0.05)
        assert batch["sinks"]["lance"]["done"] == 7, batch
    assert assert_mirrored("lance", tmp_path / "stores", url) > 0
    names = {p["display_name"] for _, p in stored_points("lance", tmp_path / "stores").values()}
    assert "sky notes.txt" in names and not any("uploads" in n for n in names)
    stored = sql(url, "SELECT options FROM batches WHERE id = 'mirrored'")[0][0]
    assert (json.loads(stored) if isinstance(stored, str) else stored)["sinks"] == ["lance"]


def test_the_cli_refuses_an_unknown_sink_in_one_line_and_shows_sink_progress(
    tmp_path: Path, server: EmbeddingServer
) -> None:
    cli = Cli(tmp_path / "home")
    env = {
        "LEDGER_SINKS": sink_profiles(tmp_path / "stores"),
        "LEDGER_EMBEDDERS": embedder_profiles(server.base_url),
    }
    docs = tmp_path / "docs"
    make_corpus(docs, per_topic=1)
    refused = cli("ingest", str(docs), "-o", f"embedder={PROFILE}", "--sink", "nope", env=env)
    assert refused.code == 2, refused
    assert "unknown sink profile 'nope'" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    done = cli(
        "ingest", str(docs), "-o", f"embedder={PROFILE}", "--sink", "qdrant", "--batch", "b",
        env=env,
    )  # fmt: skip
    assert done.code == 0, done
    status = cli("status", "b", "--json", env=env)
    assert status.json()["sinks"] == {
        "qdrant": {"pending": 0, "done": 6, "failed": 0, "last_error": None}
    }
    shown = cli("status", "b", env=env)
    assert "sink qdrant" in shown.stdout and "6 done, 0 pending, 0 failed" in shown.stdout
