"""Hostile input: path escapes, oversized, deeply nested and malformed bodies. Always 4xx,
always problem+json, and never a half-created batch or a stray stored file."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Server

PROBLEM = "application/problem+json"


def _assert_problem(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == status
    assert body["detail"]
    return body  # type: ignore[no-any-return]


async def _assert_no_batch(client: httpx.AsyncClient, batch_id: str) -> None:
    assert (await client.get(f"/api/v1/batches/{batch_id}")).status_code == 404


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "passwd").write_text("secret")
    return secret


async def test_path_escapes_are_rejected(server: Server, outside: Path) -> None:
    inside = server.root / f"esc-{uuid.uuid4().hex[:8]}"
    inside.mkdir()
    (inside / "ok.txt").write_text("ok")
    (inside / "link-out").symlink_to(outside / "passwd")
    (inside / "dir-out").symlink_to(outside, target_is_directory=True)
    dotdot = f"{server.root}/../{outside.parent.name}/outside/passwd"
    cases = {
        "dotdot": ([f"{inside}/../../{outside.name}"], "outside the allowed roots"),
        "dotdot2": ([dotdot], "outside the allowed roots"),
        "absolute": ([str(outside / "passwd")], "outside the allowed roots"),
        "etc": (["/etc/passwd"], "outside the allowed roots"),
        "symlink-file": ([str(inside / "link-out")], "outside the allowed roots"),
        "symlink-dir": ([str(inside / "dir-out")], "outside the allowed roots"),
        "relative": (["ok.txt"], "not absolute"),
        "missing": ([str(inside / "nope")], "does not exist"),
        "nul": ([str(inside) + "\x00x"], "NUL"),
    }
    async with server.client("acme") as client:
        for name, (paths, why) in cases.items():
            batch_id = f"esc-{name}-{uuid.uuid4().hex[:6]}"
            r = await client.post("/api/v1/batches", json={"id": batch_id, "paths": paths})
            body = _assert_problem(r, 400)
            assert why in str(body["detail"]), (name, body)
            await _assert_no_batch(client, batch_id)
        # In a folder, a symlink leading outside is left out with a reason (never naming
        # where it leads), the rest is taken; a symlink that stays inside the root is taken
        # at its real location.
        (inside / "link-in").symlink_to(inside / "ok.txt")
        r = await client.post("/api/v1/batches", json={"paths": [str(inside)]})
        assert r.status_code == 201, r.text
        assert r.json()["skipped_paths"] == [
            {
                "path": str(inside / "link-out"),
                "reason": "symlink to a place outside the allowed roots",
            }
        ]
        assert r.json()["skipped_paths_count"] == 1 and "passwd" not in r.text.replace(
            str(inside / "link-out"), ""
        )
        docs = (await client.get(f"/api/v1/batches/{r.json()['id']}/documents")).json()["items"]
        assert [d["source"] for d in docs] == [str(inside / "ok.txt")]
        # A folder that holds nothing but such symlinks is refused, and says why.
        only_out = server.root / f"esc-only-{uuid.uuid4().hex[:8]}"
        only_out.mkdir()
        (only_out / "link-out").symlink_to(outside / "passwd")
        r = await client.post("/api/v1/batches", json={"paths": [str(only_out)]})
        body = _assert_problem(r, 400)
        assert "hold no files (1 left out" in str(body["detail"]), body


async def test_bad_json_bodies(server: Server) -> None:
    batch_id = f"bad-{uuid.uuid4().hex[:8]}"
    json_headers = {"content-type": "application/json"}
    async with server.client("acme") as client:
        post = client.post
        url = "/api/v1/batches"
        _assert_problem(await post(url, content=b'{"id": "x",', headers=json_headers), 400)
        _assert_problem(await post(url, content=b"\xff\xfe", headers=json_headers), 400)
        _assert_problem(await post(url, content=b"[1, 2]", headers=json_headers), 422)
        deep = b'{"options": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        _assert_problem(await post(url, content=deep, headers=json_headers), 400)
        deep = b'{"options": {"a": ' + b"[" * 5_000 + b"]" * 5_000 + b"}}"
        _assert_problem(await post(url, content=deep, headers=json_headers), 400)
        deep_options = {
            "options": {
                "a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
            }
        }
        body = _assert_problem(await post(url, json={"id": batch_id, **deep_options}), 400)
        assert "nested" in str(body["detail"])
        big = {"id": batch_id, "name": "x" * 2_000_000}
        body = _assert_problem(await post(url, json=big), 413)
        assert "bytes" in str(body["detail"])
        wrong = _assert_problem(await post(url, json={"id": batch_id, "priority": "high"}), 422)
        assert "priority" in str(wrong["detail"])
        _assert_problem(await post(url, json={"id": batch_id, "unknown": 1}), 422)
        _assert_problem(await post(url, json={"id": "has space"}), 422)
        _assert_problem(await post(url, json={"id": batch_id, "max_attempts": 0}), 422)
        _assert_problem(await post(url, json={"id": batch_id, "glob": "*.txt"}), 400)
        await _assert_no_batch(client, batch_id)
        _assert_problem(await client.get("/api/v1/batches", params={"limit": 0}), 422)
        _assert_problem(await client.get("/api/v1/batches", params={"limit": "x"}), 422)
        _assert_problem(await client.get("/api/v1/documents/abc"), 404)
        _assert_problem(await client.get("/api/v1/nothing-here"), 404)
        _assert_problem(await client.delete("/api/v1/batches"), 405)
        empty = await client.get("/api/v1/search", params={"q": "x"})
        assert empty.status_code == 200
        assert empty.json()["hits"] == []
        for hostile in ('"', "AND OR (", "NEAR(a b", "*", "a:b", "-"):
            answer = await client.get("/api/v1/search", params={"q": hostile})
            assert answer.status_code in (200, 400), (hostile, answer.text)


def _storage_files(server: Server) -> set[str]:
    return {str(p) for p in (server.home / "storage").rglob("*") if p.is_file()}


async def test_malformed_multipart_leaves_nothing_behind(server: Server) -> None:
    batch_id = f"mp-{uuid.uuid4().hex[:8]}"
    async with server.client("acme") as client:
        await client.post("/api/v1/batches", json={"id": batch_id})
        url = f"/api/v1/batches/{batch_id}/files"
        before = _storage_files(server)
        boundary = "XyZ"
        head = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=f; filename=a.txt\r\n"
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        complete_part = head + b"first file\r\n"
        truncated = (
            complete_part
            + f"--{boundary}\r\n".encode()
            + head[len(boundary) + 4 :]
            + (b"x" * 3_000_000)
        )
        ctype = {"content-type": f"multipart/form-data; boundary={boundary}"}
        _assert_problem(await client.post(url, content=truncated, headers=ctype), 400)
        garbage = b"this is not multipart at all" * 10
        _assert_problem(await client.post(url, content=garbage, headers=ctype), 400)
        no_boundary = {"content-type": "multipart/form-data"}
        _assert_problem(await client.post(url, content=complete_part, headers=no_boundary), 400)
        _assert_problem(await client.post(url, json={"a": 1}), 415)
        # A form post is what any other site's page can send: refused before the route.
        form_only = await client.post(url, data={"field": "value"}, files={})
        _assert_problem(form_only, 403)
        assert _storage_files(server) == before
        batch = (await client.get(f"/api/v1/batches/{batch_id}")).json()["batch"]
        assert batch["total"] == 0


async def test_uploaded_names_are_metadata_only(server: Server) -> None:
    batch_id = f"names-{uuid.uuid4().hex[:8]}"
    # Decomposed é, a right-to-left override, a tab and a zero-width space, sent raw (not
    # percent-encoded as httpx would) to reach the server as the bytes a hostile client sends.
    tricky = "../../etc/e\u0301vil\u202egnp.exe\t\u200b.txt"
    boundary = "b0undary"
    parts = [(tricky, b"one"), ("same.txt", b"two"), ("same.txt", b"two")]
    body = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="{name}"\r\n'
            "Content-Type: text/plain\r\n\r\n".encode()
            + data
            + b"\r\n"
            for name, data in parts
        )
        + f"--{boundary}--\r\n".encode()
    )
    async with server.client("acme") as client:
        await client.post("/api/v1/batches", json={"id": batch_id})
        r = await client.post(
            f"/api/v1/batches/{batch_id}/files",
            content=body,
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        assert r.status_code == 201, r.text
        files = r.json()["files"]
        assert files[0]["filename"] == "\u00e9vilgnp.exe.txt"
        assert len({f["source"] for f in files}) == 3  # same name, same bytes: two documents
        assert r.json()["added"] == 3
        storage = (server.home / "storage").resolve()
        for f in files:
            source = Path(f["source"])
            assert os.path.realpath(source).startswith(f"{storage}{os.sep}")  # noqa: ASYNC240
            assert "same" not in source.name
            assert "evil" not in source.name
        docs = (await client.get(f"/api/v1/batches/{batch_id}/documents")).json()["items"]
        assert [d["meta"]["filename"] for d in docs] == [
            files[0]["filename"],
            "same.txt",
            "same.txt",
        ]
        assert (
            docs[1]["sha256"] == "3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3"
        )
        assert docs[1]["size"] == 3


def test_storage_folder_names_cannot_escape() -> None:
    from ledger.api.multipart import safe_component

    for hostile in ("..", ".", "../x", "a/b", "x\\y", "", "é", "a" * 300, ".hidden"):
        name = safe_component(hostile)
        assert name not in (".", "..")
        assert os.sep not in name
        assert "/" not in name
        assert not name.startswith(".")
    assert safe_component("acme") == "acme"
    assert safe_component(None) == "_local"
