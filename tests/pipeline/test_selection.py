"""Files that are not documents are skipped as ``excluded_type``, through the ledger, on
both backends: by name, by content, by an upload's original file name; real documents with
content ingest cannot read still fail."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec, SourceSpec
from ledger.states import DocumentStatus
from ledger.worker.runtime import Worker
from tests.ingest.not_documents import DOCUMENTS, NOT_DOCUMENTS, make_docs_folder, png_bytes
from tests.pipeline.support import check_index_invariants, run_batch
from tests.pipeline.test_ingest import all_documents

pytestmark = pytest.mark.timeout(180)


async def test_a_docs_folder_indexes_its_documents_and_skips_the_rest(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    files = make_docs_folder(tmp_path / "site")
    _, stats = await run_batch(led, BatchSpec(id="site", processor="ingest"), files.values())
    assert stats.failed == 0
    docs = await all_documents(led, "site")
    for name, path in files.items():
        doc = docs[str(path)]
        if name in DOCUMENTS:
            assert doc.status is DocumentStatus.DONE, (name, doc.error_message)
            continue
        assert doc.status is DocumentStatus.SKIPPED, (name, doc.status, doc.error_message)
        assert doc.result is not None and doc.result["reason"] == NOT_DOCUMENTS[name], name
    batch = await led.reads.batch("site")
    assert batch.complete and batch.counts[DocumentStatus.FAILED] == 0
    check_index_invariants(db_url)  # among others: a skipped document holds no chunk


async def test_include_all_types_reads_scripts_as_text_but_not_images(
    led: Ledger, tmp_path: Path
) -> None:
    files = make_docs_folder(tmp_path / "site")
    spec = BatchSpec(id="all", processor="ingest", options={"include_all_types": True})
    await run_batch(led, spec, [files["_static/searchindex.js"], files["_images/logo.png"]])
    docs = await all_documents(led, "all")
    script = docs[str(files["_static/searchindex.js"])]
    assert script.status is DocumentStatus.DONE, script.error_message
    assert script.result is not None and script.result["type"] == "text"
    logo = docs[str(files["_images/logo.png"])]
    assert logo.status is DocumentStatus.SKIPPED  # its content is still an image
    assert logo.result is not None and logo.result["reason"] == "excluded_type: PNG image"


async def test_an_upload_is_judged_by_its_original_name(led: Ledger, tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    # Text content under the random storage names: only the names can tell them apart.
    text_as_logo = storage / "9f1c2e"
    text_as_logo.write_text("plain text uploaded under the name of an image\n")
    notes_stored_as_png = storage / "a7b3.png"
    notes_stored_as_png.write_text("notes uploaded as notes.txt\n")
    sources = [
        SourceSpec(str(text_as_logo), meta={"filename": "logo.png", "upload_id": "u1"}),
        SourceSpec(str(notes_stored_as_png), meta={"filename": "notes.txt", "upload_id": "u2"}),
    ]
    submitted = await led.queue.submit(BatchSpec(id="uploads", processor="ingest"), sources)
    await Worker(led, batch_ids=[submitted.batch.id]).run(until_complete=True)
    docs = await all_documents(led, "uploads")
    logo = docs[str(text_as_logo)]
    assert logo.status is DocumentStatus.SKIPPED
    assert logo.result is not None and logo.result["reason"] == "excluded_type: PNG image"
    notes = docs[str(notes_stored_as_png)]
    assert notes.status is DocumentStatus.DONE, notes.error_message


async def test_documents_ingest_cannot_read_still_fail(led: Ledger, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    cases = {
        "legacy.doc": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(range(256)) * 8,
        "unknown.bin.data": bytes(range(256)) * 8,
        "text.pdf": b"this is plain text, not a PDF\n" * 20,
        "image.pdf": png_bytes(),  # named a document, holds an image: not a document
    }
    for name, data in cases.items():
        (folder / name).write_bytes(data)
    await run_batch(led, BatchSpec(id="bad", processor="ingest"), sorted(folder.iterdir()))
    docs = {os.path.basename(s): d for s, d in (await all_documents(led, "bad")).items()}
    for name in ("legacy.doc", "unknown.bin.data", "text.pdf"):
        assert docs[name].status is DocumentStatus.FAILED, name
        assert docs[name].error_code == "unsupported_type", name
    assert docs["image.pdf"].status is DocumentStatus.SKIPPED
