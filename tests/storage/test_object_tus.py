"""Resumable (tus) uploads into the object store: the server is SIGKILLed in the middle of
an upload, started again, and the client resumes from the offset the ledger counted; the
complete file becomes one object (its bytes the client's), the document names it, no local
copy is kept, and deleting the batch removes the object."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import httpx
import pytest
from tusclient import client as tus_client
from tusclient.storage.filestorage import FileStorage

from tests.helpers.s3 import S3Server
from tests.tus.conftest import launch, upload_id_of, upload_in_thread

MB = 1024 * 1024


def _source(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(size // MB):
            block = os.urandom(MB)
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def test_a_server_killed_mid_upload_resumes_and_the_file_lands_in_the_store(
    s3: S3Server, tmp_path: Path
) -> None:
    bucket = s3.bucket()
    server = launch(
        tmp_path / "srv",
        {
            **s3.env(),
            "LEDGER_STORAGE_URL": f"s3://{bucket}/uploads",
            "LEDGER_TUS_COMMIT_BYTES": str(MB),
            # Uploads in progress live in the store, fenced by the ledger's lease alone: a
            # request killed with its server holds that lease until it runs out.
            "LEDGER_TUS_LEASE_SECONDS": "2",
        },
        tenants=("acme",),
    )
    try:
        size = 24 * MB
        source = tmp_path / "source.bin"
        digest = _source(source, size)
        storage = FileStorage(str(tmp_path / "tus-urls.json"))  # type: ignore[no-untyped-call]

        def uploader(retries: int = 0) -> object:
            client = tus_client.TusClient(server.endpoint, headers=server.headers("acme"))
            return client.uploader(
                str(source), chunk_size=MB, metadata={"batch": "tus-s3", "filename": "big.bin"},
                store_url=True, url_storage=storage, retries=retries, retry_delay=1,
            )  # fmt: skip

        first = uploader()
        thread, failure = upload_in_thread(first)

        def offset_in_db() -> int:
            rows = server.sql("SELECT upload_offset FROM uploads WHERE batch_id = 'tus-s3'")
            return int(rows[0][0]) if rows else 0

        deadline = time.monotonic() + 60
        while offset_in_db() < 8 * MB:
            assert time.monotonic() < deadline, "8 MB did not arrive"
            time.sleep(0.01)
        server.kill()
        thread.join(timeout=30)
        assert failure, "the upload should have failed when the server died"
        assert s3.keys(bucket) == []  # nothing reaches the store before the last byte

        upload_id = upload_id_of(first.url)  # type: ignore[attr-defined]
        counted = server.upload_row(upload_id).upload_offset
        assert 8 * MB <= counted < size
        server.start()
        # If the kill landed inside a PATCH, its lease holds the upload for up to 2 s more:
        # the server answers 423 meanwhile, and the client retries.
        second = uploader(retries=10)
        assert second.offset == counted  # type: ignore[attr-defined]
        second.upload()  # type: ignore[attr-defined]

        [doc] = server.sql(
            "SELECT id, source, source_sha256, source_size FROM documents WHERE batch_id = 'tus-s3'"
        )
        assert doc.source == f"s3://{bucket}/uploads/acme/tus-s3/tus-{upload_id}"
        assert (doc.source_sha256, doc.source_size) == (digest, size)
        body = s3.client().get_object(Bucket=bucket, Key=doc.source.split("/", 3)[3])["Body"]
        assert hashlib.sha256(body.read()).hexdigest() == digest
        row = server.upload_row(upload_id)
        assert (row.state, row.document_id) == ("complete", doc.id)
        assert not Path(row.path).exists()  # the store holds it; no local copy is kept

        deleted = httpx.delete(
            f"{server.base_url}/api/v1/batches/tus-s3", headers=server.headers("acme")
        )
        assert deleted.status_code == 204, deleted.text
        assert s3.keys(bucket) == []
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


pytestmark = pytest.mark.timeout(120)
