"""The ingest processor through the ledger: real files of every type, every bad case."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec, DocumentInfo
from ledger.states import DocumentStatus
from tests.ingest import fixtures as fx
from tests.pipeline.support import check_index_invariants, run_batch

pytestmark = pytest.mark.timeout(180)


async def all_documents(ledger: Ledger, batch_id: str) -> dict[str, DocumentInfo]:
    found = {}
    cursor = None
    while True:
        page = await ledger.reads.documents(batch_id, cursor=cursor, limit=500)
        for doc in page.items:
            found[doc.source] = doc
        cursor = page.next_cursor
        if cursor is None:
            return found


async def test_good_documents_are_done_with_their_chunks(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    corpus = fx.make_good_corpus(tmp_path / "good", 15)
    _, stats = await run_batch(led, BatchSpec(id="good", processor="ingest"), corpus)
    assert stats.done == 15 and stats.failed == 0
    docs = await all_documents(led, "good")
    for path, kind in corpus.items():
        doc = docs[path]
        assert doc.status is DocumentStatus.DONE, (path, doc.error_code, doc.error_message)
        result = doc.result
        assert result is not None
        assert result["type"] == kind and result["chunks"] >= 1
        assert result["sha256"] == fx_sha(path) == doc.sha256
        assert set(result["timings"]) >= {"read", "extract", "chunk", "spool", "store"}
        assert result["timings"]["store"] > 0
    check_index_invariants(db_url)
    # Nothing left in the spool folder.
    assert os.listdir(led.settings.home / "spool") == []


def fx_sha(path: str) -> str:
    from ledger.processors.ingest import sha256_file

    return sha256_file(path)[0]


async def test_every_bad_document_ends_with_its_code(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    cases = fx.make_bad_corpus(tmp_path / "bad", include_huge=db_url.startswith("sqlite"))
    await run_batch(led, BatchSpec(id="bad", processor="ingest"), cases)
    batch = await led.reads.batch("bad")
    assert batch.complete
    assert batch.counts[DocumentStatus.RUNNING] == 0 and batch.counts[DocumentStatus.PENDING] == 0
    docs = await all_documents(led, "bad")
    # Files that are not documents (an image, an archive) are skipped, whatever their code
    # would be: excluded_type says what they are.
    excluded = {path: fx.excluded_type(path) for path in cases}
    assert sorted(os.path.basename(p) for p, why in excluded.items() if why) == [
        "archive.gz",
        "image.txt",
    ]
    got = {
        os.path.basename(path): (doc.error_code if doc.status is DocumentStatus.FAILED else None)
        for path, doc in docs.items()
    }
    expected = {
        os.path.basename(path): None if excluded[path] else code for path, code in cases.items()
    }
    assert got == expected
    for path, code in cases.items():
        doc = docs[path]
        if excluded[path]:
            assert doc.status is DocumentStatus.SKIPPED, path
            assert doc.result is not None and doc.result["reason"] == excluded[path]
            continue
        assert doc.status is (DocumentStatus.DONE if code is None else DocumentStatus.FAILED)
        if code is not None:
            assert doc.attempts == 1  # permanent: not retried
    check_index_invariants(db_url)
    assert os.listdir(led.settings.home / "spool") == []
