"""The tus 1.0.0 protocol against a live server: the real tus client (tuspy) and raw HTTP."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import cast

import httpx
import pytest
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

from tests.tus.conftest import TUS, TusServer, metadata, upload_id_of


def _patch(
    server: TusServer,
    url: str,
    offset: int,
    body: bytes,
    tenant: str | None = "acme",
    **extra: str,
) -> httpx.Response:
    base = {"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
    headers = server.headers(tenant, **{**base, **extra})
    return httpx.patch(url, headers=headers, content=body, timeout=60)


def _head(server: TusServer, url: str, tenant: str | None = "acme") -> httpx.Response:
    return httpx.head(url, headers=server.headers(tenant))


def _file(server: TusServer, url: str) -> bytes:
    return Path(server.upload_row(upload_id_of(url)).path).read_bytes()


def _documents(server: TusServer, batch: str) -> list[dict[str, object]]:
    response = httpx.get(
        f"{server.base_url}/api/v1/batches/{batch}/documents", headers=server.headers("acme")
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_options_advertise_the_server_without_key_or_version(tus_server: TusServer) -> None:
    for url in (tus_server.endpoint, f"{tus_server.endpoint}/{'0' * 32}"):
        response = httpx.options(url)
        assert response.status_code == 204
        assert response.headers["Tus-Resumable"] == "1.0.0"
        assert response.headers["Tus-Version"] == "1.0.0"
        assert response.headers["Tus-Max-Size"] == str(64 * 1024**2)
        assert set(response.headers["Tus-Extension"].split(",")) == {
            "creation",
            "creation-with-upload",
            "creation-defer-length",
            "expiration",
            "checksum",
            "termination",
        }
        assert set(response.headers["Tus-Checksum-Algorithm"].split(",")) == {
            "sha1",
            "sha256",
            "md5",
        }


def test_requests_without_the_protocol_version_are_refused(tus_server: TusServer) -> None:
    url = tus_server.create(10, batch="tus-version")
    auth = {"Authorization": f"Bearer {tus_server.keys['acme']}"}
    for headers in (auth, {**auth, "Tus-Resumable": "0.2.2"}):
        head = httpx.head(url, headers=headers)
        assert head.status_code == 412
        assert head.headers["Tus-Version"] == "1.0.0"
        assert head.headers["Tus-Resumable"] == "1.0.0"
        patch = httpx.patch(
            url,
            headers={
                **headers,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
            content=b"0123456789",
        )
        assert patch.status_code == 412
        assert patch.headers["content-type"] == "application/problem+json"
    assert _head(tus_server, url).headers["Upload-Offset"] == "0"
    # Errors carry the version too.
    missing = _head(tus_server, f"{tus_server.endpoint}/{'f' * 32}")
    assert missing.status_code == 404
    assert missing.headers["Tus-Resumable"] == "1.0.0"


def test_tuspy_upload_with_checksums_makes_one_document(
    tus_server: TusServer, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 123)
    source = tmp_path / "report.pdf"
    source.write_bytes(data)
    client = tus_client.TusClient(tus_server.endpoint, headers=tus_server.headers("acme"))
    uploader = client.uploader(
        str(source),
        chunk_size=1024 * 1024,
        metadata={"batch": "tus-basic", "filename": "re\u202eport\u0007.pdf", "filetype": "a/b"},
        upload_checksum=True,  # sha1 on every chunk
    )
    uploader.upload()
    assert uploader.offset == len(data)
    url = cast(str, uploader.url)  # set by upload(); tusclient types the attribute as None

    head = _head(tus_server, url)
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == str(len(data))
    assert head.headers["Cache-Control"] == "no-store"
    assert "batch " in head.headers["Upload-Metadata"]
    assert "Upload-Expires" not in head.headers  # complete uploads do not expire

    docs = _documents(tus_server, "tus-basic")
    assert len(docs) == 1
    doc = docs[0]
    assert doc["sha256"] == hashlib.sha256(data).hexdigest()
    assert doc["size"] == len(data)
    # Cleaned like multipart file names: no bidi or control characters.
    assert doc["meta"] == {
        "filename": "report.pdf",
        "upload_id": upload_id_of(url),
        "content_type": "a/b",
    }
    assert Path(str(doc["source"])).read_bytes() == data
    row = tus_server.upload_row(upload_id_of(url))
    assert (row.state, row.document_id, row.writer_token) == ("complete", doc["id"], None)
    # The batch was made on completion, owned by the caller's tenant.
    batch = httpx.get(
        f"{tus_server.base_url}/api/v1/batches/tus-basic", headers=tus_server.headers("globex")
    )
    assert batch.status_code == 404


def test_wrong_offset_is_409_and_changes_nothing(tus_server: TusServer) -> None:
    url = tus_server.create(100, batch="tus-offset")
    assert _patch(tus_server, url, 0, b"a" * 40).status_code == 204
    for wrong in (0, 39, 41, 100):
        response = _patch(tus_server, url, wrong, b"b" * 10)
        assert response.status_code == 409, response.text
        assert "resume from 40" in response.json()["detail"]
    assert _head(tus_server, url).headers["Upload-Offset"] == "40"
    assert _file(tus_server, url) == b"a" * 40
    assert _patch(tus_server, url, 0, b"x", **{"Upload-Offset": "-1"}).status_code == 400
    wrong_type = httpx.patch(
        url,
        headers=tus_server.headers("acme", **{"Upload-Offset": "40"}),
        content=b"b",
    )
    assert wrong_type.status_code == 415


def _digest(name: str, body: bytes) -> str:
    return f"{name} {base64.b64encode(hashlib.new(name, body).digest()).decode()}"


def test_bad_checksum_is_460_and_the_chunk_is_discarded(tus_server: TusServer) -> None:
    url = tus_server.create(30, batch="tus-checksum")
    first = b"0123456789"
    ok = _patch(tus_server, url, 0, first, **{"Upload-Checksum": _digest("sha1", first)})
    assert ok.status_code == 204
    assert ok.headers["Upload-Offset"] == "10"

    bad = _patch(tus_server, url, 10, b"abcdefghij", **{"Upload-Checksum": _digest("sha1", b"x")})
    assert bad.status_code == 460
    assert bad.json()["title"] == "Checksum Mismatch"
    assert _head(tus_server, url).headers["Upload-Offset"] == "10"
    assert _file(tus_server, url) == first

    unsupported = _patch(tus_server, url, 10, b"abcdefghij", **{"Upload-Checksum": "crc32 AAAA"})
    assert unsupported.status_code == 400
    assert _head(tus_server, url).headers["Upload-Offset"] == "10"

    for name, part in (("sha256", b"abcdefghij"), ("md5", b"ABCDEFGHIJ")):
        offset = int(_head(tus_server, url).headers["Upload-Offset"])
        response = _patch(tus_server, url, offset, part, **{"Upload-Checksum": _digest(name, part)})
        assert response.status_code == 204, response.text
    assert _file(tus_server, url) == first + b"abcdefghij" + b"ABCDEFGHIJ"
    assert len(_documents(tus_server, "tus-checksum")) == 1


def test_terminated_upload_is_gone_with_its_file(tus_server: TusServer) -> None:
    url = tus_server.create(100, batch="tus-terminate")
    assert _patch(tus_server, url, 0, b"z" * 50).status_code == 204
    path = Path(tus_server.upload_row(upload_id_of(url)).path)
    assert path.exists()

    assert httpx.delete(url, headers=tus_server.headers("globex")).status_code == 404
    response = httpx.delete(url, headers=tus_server.headers("acme"))
    assert response.status_code == 204
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert not path.exists()
    assert _head(tus_server, url).status_code == 404
    assert _patch(tus_server, url, 50, b"z").status_code == 404
    row = tus_server.upload_row(upload_id_of(url))
    assert row.state == "terminated"
    assert row.files_removed_at is not None

    # A complete upload's file is its document's source: it cannot be terminated.
    done = tus_server.create(3, batch="tus-terminate")
    assert _patch(tus_server, done, 0, b"abc").status_code == 204
    assert httpx.delete(done, headers=tus_server.headers("acme")).status_code == 409
    assert Path(tus_server.upload_row(upload_id_of(done)).path).read_bytes() == b"abc"


def test_oversize_is_413(tus_server: TusServer) -> None:
    limit = 64 * 1024**2
    headers = tus_server.headers(
        "acme", **{"Upload-Length": str(limit + 1), "Upload-Metadata": metadata(batch="tus-big")}
    )
    assert httpx.post(tus_server.endpoint, headers=headers).status_code == 413
    assert tus_server.sql("SELECT count(*) FROM uploads WHERE batch_id = 'tus-big'") == [(0,)]

    url = tus_server.create(10, batch="tus-big")
    assert _patch(tus_server, url, 0, b"12345").status_code == 204
    too_long = _patch(tus_server, url, 5, b"123456")
    assert too_long.status_code == 413
    assert _head(tus_server, url).headers["Upload-Offset"] == "5"
    assert _file(tus_server, url) == b"12345"

    # A deferred length is bounded by Tus-Max-Size, and cannot be declared beyond it.
    deferred = tus_server.create(None, batch="tus-big")
    assert (
        _patch(tus_server, deferred, 0, b"1", **{"Upload-Length": str(limit + 1)}).status_code
        == 413
    )

    # Without Content-Length (chunked), the limit holds as the bytes arrive.
    def body() -> object:
        yield b"a" * 4
        yield b"b" * 4

    chunked = httpx.patch(
        url,
        headers=tus_server.headers(
            "acme",
            **{"Upload-Offset": "5", "Content-Type": "application/offset+octet-stream"},
        ),
        content=body(),  # type: ignore[arg-type]
    )
    assert chunked.status_code == 413
    assert _file(tus_server, url) == b"12345"


def test_creation_with_upload(tus_server: TusServer) -> None:
    data = b"hello, resumable world"
    headers = tus_server.headers(
        "acme",
        **{
            "Upload-Length": str(len(data)),
            "Upload-Metadata": metadata(batch="tus-cwu", filename="greeting.txt"),
            "Content-Type": "application/offset+octet-stream",
        },
    )
    whole = httpx.post(tus_server.endpoint, headers=headers, content=data)
    assert whole.status_code == 201, whole.text
    assert whole.headers["Upload-Offset"] == str(len(data))
    docs = _documents(tus_server, "tus-cwu")
    assert len(docs) == 1
    assert docs[0]["sha256"] == hashlib.sha256(data).hexdigest()

    part = httpx.post(tus_server.endpoint, headers=headers, content=data[:5])
    assert part.status_code == 201
    assert part.headers["Upload-Offset"] == "5"
    url = str(httpx.URL(tus_server.endpoint).join(part.headers["Location"]))
    assert _patch(tus_server, url, 5, data[5:]).status_code == 204
    assert len(_documents(tus_server, "tus-cwu")) == 2

    # An empty file is complete as soon as it is created.
    empty = httpx.post(
        tus_server.endpoint,
        headers=tus_server.headers(
            "acme", **{"Upload-Length": "0", "Upload-Metadata": metadata(batch="tus-cwu")}
        ),
    )
    assert empty.status_code == 201
    assert len(_documents(tus_server, "tus-cwu")) == 3


def test_deferred_length(tus_server: TusServer) -> None:
    url = tus_server.create(None, batch="tus-defer")
    head = _head(tus_server, url)
    assert head.headers["Upload-Defer-Length"] == "1"
    assert "Upload-Length" not in head.headers
    assert _patch(tus_server, url, 0, b"first ").status_code == 204
    # The batch is reserved for its tenant at creation; no document until the last byte.
    assert tus_server.sql("SELECT owner FROM batches WHERE id = 'tus-defer'") == [("acme",)]
    assert tus_server.sql("SELECT count(*) FROM documents WHERE batch_id = 'tus-defer'") == [(0,)]
    assert _patch(tus_server, url, 6, b"x", **{"Upload-Length": "3"}).status_code == 400
    last = _patch(tus_server, url, 6, b"second", **{"Upload-Length": "12"})
    assert last.status_code == 204, last.text
    head = _head(tus_server, url)
    assert head.headers["Upload-Length"] == head.headers["Upload-Offset"] == "12"
    assert "Upload-Defer-Length" not in head.headers
    docs = _documents(tus_server, "tus-defer")
    assert [d["sha256"] for d in docs] == [hashlib.sha256(b"first second").hexdigest()]


def test_retried_final_request_creates_no_second_document(tus_server: TusServer) -> None:
    url = tus_server.create(8, batch="tus-once")
    assert _patch(tus_server, url, 0, b"1234").status_code == 204
    assert _patch(tus_server, url, 4, b"5678").status_code == 204
    # The client did not see the answer and sends the last chunk again: 409, and the
    # upload's status says it is complete.
    assert _patch(tus_server, url, 4, b"5678").status_code == 409
    again = _patch(tus_server, url, 8, b"")
    assert again.status_code == 204
    assert again.headers["Upload-Offset"] == "8"
    assert _head(tus_server, url).headers["Upload-Offset"] == "8"
    path = tus_server.upload_row(upload_id_of(url)).path
    assert tus_server.sql("SELECT count(*) FROM documents WHERE source = :p", p=path) == [(1,)]
    assert len(_documents(tus_server, "tus-once")) == 1


def test_tenants_cannot_see_each_others_uploads(tus_server: TusServer) -> None:
    url = tus_server.create(10, batch="tus-tenant")
    assert _head(tus_server, url, "globex").status_code == 404
    assert _patch(tus_server, url, 0, b"0123456789", "globex").status_code == 404
    assert httpx.delete(url, headers=tus_server.headers("globex")).status_code == 404
    unauthenticated = httpx.head(url, headers=TUS)
    assert unauthenticated.status_code == 401
    assert _head(tus_server, url).headers["Upload-Offset"] == "0"
    # Another tenant's batch id is not available to upload into.
    httpx.post(
        f"{tus_server.base_url}/api/v1/batches",
        headers=tus_server.headers("globex"),
        json={"id": "tus-globex", "processor": "noop"},
    ).raise_for_status()
    taken = httpx.post(
        tus_server.endpoint,
        headers=tus_server.headers(
            "acme", **{"Upload-Length": "1", "Upload-Metadata": metadata(batch="tus-globex")}
        ),
    )
    assert taken.status_code == 409


def test_metadata_is_checked_at_creation(tus_server: TusServer) -> None:
    def create(**extra: str) -> httpx.Response:
        return httpx.post(tus_server.endpoint, headers=tus_server.headers("acme", **extra))

    batch = metadata(batch="tus-meta")
    assert create(**{"Upload-Length": "1"}).status_code == 400  # no batch
    assert create(**{"Upload-Length": "1", "Upload-Metadata": "batch %%%"}).status_code == 400
    assert (
        create(**{"Upload-Length": "1", "Upload-Metadata": f"{batch},{batch}"}).status_code == 400
    )
    assert create(**{"Upload-Metadata": batch}).status_code == 400  # no length
    both = {"Upload-Length": "1", "Upload-Defer-Length": "1", "Upload-Metadata": batch}
    assert create(**both).status_code == 400
    assert create(**{"Upload-Length": "-1", "Upload-Metadata": batch}).status_code == 400
    assert create(**{"Upload-Length": "1", "Upload-Metadata": batch + ",flag"}).status_code == 201
    bad_id = metadata(batch="a/b")
    assert create(**{"Upload-Length": "1", "Upload-Metadata": bad_id}).status_code == 400


def test_tuspy_reports_a_missing_upload(tus_server: TusServer, tmp_path: Path) -> None:
    source = tmp_path / "x.bin"
    source.write_bytes(b"x" * 10)
    client = tus_client.TusClient(tus_server.endpoint, headers=tus_server.headers("acme"))
    with pytest.raises((TusCommunicationError, TusUploadFailed)):
        client.uploader(str(source), url=f"{tus_server.endpoint}/{'a' * 32}").upload()


def test_method_override_for_clients_behind_strict_proxies(tus_server: TusServer) -> None:
    url = tus_server.create(4, batch="tus-override")
    append = httpx.post(
        url,
        headers=tus_server.headers(
            "acme",
            **{
                "X-HTTP-Method-Override": "PATCH",
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        ),
        content=b"ab",
    )
    assert append.status_code == 204
    assert append.headers["Upload-Offset"] == "2"
    assert httpx.post(url, headers=tus_server.headers("acme")).status_code == 405
    ended = httpx.post(
        url, headers=tus_server.headers("acme", **{"X-HTTP-Method-Override": "DELETE"})
    )
    assert ended.status_code == 204
    assert _head(tus_server, url).status_code == 404
