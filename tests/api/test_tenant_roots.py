"""Server folders per tenant: each key may submit only from its tenant's roots, keyless use
only from LEDGER_ALLOWED_ROOTS, and a refusal never names a root."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.settings import Settings
from tests.api.conftest import Server, start_server, stop_server

SECRET_WORD = "quokkaxylophone"


@pytest.fixture(scope="module")
def roots_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("tenant-roots")
    for name in ("acme-root", "globex-root", "keyless-root"):
        (tmp / name).mkdir()
    roots_file = tmp / "roots.toml"
    roots_file.write_text(
        f'acme = ["{tmp / "acme-root"}"]\nglobex = ["{tmp / "globex-root"}"]\n', encoding="utf-8"
    )
    srv = start_server(
        tmp / "srv",
        {
            "LEDGER_AUTH": "on",
            "LEDGER_SERVE_WORKERS": "true",
            "LEDGER_POLL_SECONDS": "0.05",
            "LEDGER_ALLOWED_ROOTS": str(tmp / "keyless-root"),
            "LEDGER_TENANT_ROOTS": str(roots_file),
        },
        tenants=("acme", "globex", "initech"),
    )
    yield srv
    stop_server(srv)


def _folder(server: Server, root: str, name: str, text: str) -> Path:
    folder = server.root.parent.parent / root / name
    folder.mkdir()
    (folder / "note.txt").write_text(text, encoding="utf-8")
    return folder


def _assert_names_no_root(server: Server, text: str, sent: list[str]) -> None:
    """The refusal may echo the paths the caller sent, and nothing of any root."""
    for path in sent:
        text = text.replace(json.dumps(path)[1:-1], "")
    base = server.root.parent.parent
    for root in ("acme-root", "globex-root", "keyless-root"):
        assert str(base / root) not in text


async def _wait_done(server: Server, tenant: str, batch_id: str) -> None:
    async with server.client(tenant) as client:
        for _ in range(600):
            progress = (await client.get(f"/api/v1/batches/{batch_id}")).json()
            if progress["batch"]["complete"]:
                assert progress["batch"]["counts"]["done"] == 1, progress
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"batch {batch_id} did not finish")


async def test_a_tenant_cannot_ingest_or_search_another_tenants_folder(
    roots_server: Server,
) -> None:
    folder = _folder(roots_server, "acme-root", "private", f"the {SECRET_WORD} plan")
    async with roots_server.client("acme") as acme:
        made = await acme.post(
            "/api/v1/batches",
            json={"id": "acme-docs", "processor": "ingest", "paths": [str(folder)]},
        )
        assert made.status_code == 201, made.text
    await _wait_done(roots_server, "acme", "acme-docs")

    async with roots_server.client("acme") as acme:
        hits = (await acme.get("/api/v1/search", params={"q": SECRET_WORD})).json()["hits"]
        assert hits, "the owner finds its own document"

    async with roots_server.client("globex") as globex:
        for paths in ([str(folder)], [str(folder / "note.txt")], ["relative/path"]):
            refused = await globex.post(
                "/api/v1/batches", json={"processor": "ingest", "paths": paths}
            )
            assert refused.status_code == 400, refused.text
            _assert_names_no_root(roots_server, refused.text, paths)
        assert (await globex.get("/api/v1/search", params={"q": SECRET_WORD})).json()["hits"] == []

        own = _folder(roots_server, "globex-root", "mine", "globex notes")
        made = await globex.post(
            "/api/v1/batches", json={"processor": "ingest", "paths": [str(own)]}
        )
        assert made.status_code == 201, made.text


async def test_keyless_roots_and_no_roots_give_no_server_paths(roots_server: Server) -> None:
    keyless = _folder(roots_server, "keyless-root", "shared", "operator files")
    for tenant in ("acme", "initech"):  # LEDGER_ALLOWED_ROOTS is for keyless use only
        async with roots_server.client(tenant) as client:
            refused = await client.post(
                "/api/v1/batches", json={"processor": "ingest", "paths": [str(keyless)]}
            )
            assert refused.status_code == 400, refused.text
            _assert_names_no_root(roots_server, refused.text, [str(keyless)])
    async with roots_server.client("initech") as client:
        detail = (
            await client.post("/api/v1/batches", json={"processor": "ingest", "paths": ["/"]})
        ).json()["detail"]
        assert "no folders are allowed" in detail


def test_tenant_roots_settings(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    inline = Settings(
        allowed_roots=[tmp_path],
        tenant_roots=json.dumps({"acme": [str(tmp_path / "a")]}),  # type: ignore[arg-type]
    )
    assert inline.roots_for("acme") == [tmp_path / "a"]
    assert inline.roots_for("globex") == []
    assert inline.roots_for(None) == [tmp_path]
    assert set(inline.all_roots) == {tmp_path, tmp_path / "a"}

    as_json = tmp_path / "roots.json"
    as_json.write_text(json.dumps({"acme": [str(tmp_path)]}), encoding="utf-8")
    assert Settings(tenant_roots=str(as_json)).roots_for("acme") == [tmp_path]  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="absolute"):
        Settings(tenant_roots='{"acme": ["relative"]}')  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="JSON or TOML"):
        Settings(tenant_roots=str(tmp_path / "missing.toml"))  # type: ignore[arg-type]
