"""Archives and emails through the ledger, on SQLite and PostgreSQL: their members become
child documents of the same batch, indexed once, cited by parent and member path, replaced
when the parent changes and removed with the batch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec, DocumentInfo, UnchangedSkip
from ledger.queue import deletion
from ledger.states import DocumentStatus
from ledger.storage import MEMBERS_FOLDER
from ledger.worker.runtime import Worker
from tests.conftest import sql
from tests.ingest import container_fixtures as cf
from tests.pipeline.support import (
    check_index_invariants,
    run_batch,
    source_specs,
    sync_url_of,
)

pytestmark = pytest.mark.timeout(180)


async def documents_of(ledger: Ledger, batch_id: str) -> list[DocumentInfo]:
    found: list[DocumentInfo] = []
    cursor = None
    while True:
        page = await ledger.reads.documents(batch_id, cursor=cursor, limit=500)
        found.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return found


def check_children_invariants(url: str) -> None:
    """Plain SQL: every child names a parent of its own batch that is done, once per
    (parent, member); its file exists inside the storage folder."""
    sync = sync_url_of(url)
    orphans = sql(
        sync,
        "SELECT c.id FROM documents c LEFT JOIN documents p ON p.id = c.parent_id "
        "WHERE c.parent_id IS NOT NULL AND (p.id IS NULL OR p.batch_id <> c.batch_id "
        "OR p.status <> 'done')",
    )
    assert orphans == []
    twice = sql(
        sync,
        "SELECT parent_id, member_path, count(*) FROM documents WHERE parent_id IS NOT NULL "
        "GROUP BY parent_id, member_path HAVING count(*) > 1",
    )
    assert twice == []


async def test_a_zip_of_real_documents_becomes_cited_child_documents(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    members = cf.member_bytes(tmp_path / "src")
    inner = cf.make_zip(tmp_path / "inner.zip", {"deep/otter.txt": b"The otter sleeps.\n"})
    members["nested/inner.zip"] = inner.read_bytes()
    members["logo.png"] = b"\x89PNG\r\n\x1a\n" + b"0" * 32
    folder = tmp_path / "in"
    folder.mkdir()
    box = cf.make_zip(folder / "box.zip", members)
    spec = BatchSpec(id="zip", processor="ingest", roots=(str(folder),))
    _, stats = await run_batch(led, spec, [box])
    assert stats.failed == 0
    docs = {d.source: d for d in await documents_of(led, "zip")}
    parent = docs[str(box)]
    assert parent.status is DocumentStatus.DONE and parent.parent_id is None
    assert parent.result is not None
    assert parent.result["type"] == "zip" and parent.result["members"] == 5
    assert parent.result["skipped"] == [
        {"member": "logo.png", "reason": "excluded_type: PNG image"}
    ]
    children = {d.member_path: d for d in docs.values() if d.parent_id == parent.id}
    assert set(children) == {*cf.MEMBER_WORDS, "nested/inner.zip"}
    for path, child in children.items():
        assert child.status is DocumentStatus.DONE, (path, child.error_code, child.error_message)
        assert child.batch_id == "zip"
        assert child.source.startswith(str(led.settings.storage / MEMBERS_FOLDER))
    (grandchild,) = [d for d in docs.values() if d.parent_id == children["nested/inner.zip"].id]
    assert grandchild.member_path == "deep/otter.txt"
    assert grandchild.status is DocumentStatus.DONE
    for path, word in {**cf.MEMBER_WORDS, "deep/otter.txt": "otter"}.items():
        hits = await led.index.search(word, batch_id="zip")
        assert hits, word
        # Cited under the folder the batch was submitted from, like any of its files.
        expected = (
            f"in/box.zip!/nested/inner.zip!/{path}"
            if path == "deep/otter.txt"
            else f"in/box.zip!/{path}"
        )
        assert hits[0].source_name == expected
    check_index_invariants(db_url)
    check_children_invariants(db_url)
    batch = await led.reads.batch("zip")
    assert batch.complete and batch.counts[DocumentStatus.DONE] == 7


async def test_an_email_indexes_its_body_and_attachments(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    members = cf.member_bytes(tmp_path / "src")
    mail = cf.make_eml(
        tmp_path / "mail.eml",
        "The quarterly manatee census is attached.",
        {"report.pdf": members["report.pdf"], "minutes.docx": members["notes/minutes.docx"]},
    )
    html = cf.make_eml(tmp_path / "html.eml", "A <b>flamingo</b> in HTML.", {}, html=True)
    _, stats = await run_batch(led, BatchSpec(id="mail", processor="ingest"), [mail, html])
    assert stats.failed == 0
    docs = await documents_of(led, "mail")
    parent = next(d for d in docs if d.source == str(mail))
    assert parent.result is not None and parent.result["type"] == "email"
    assert parent.result["chunks"] >= 1 and parent.result["members"] == 2
    assert parent.sha256 == parent.result["sha256"]
    (body_hit,) = await led.index.search("manatee", batch_id="mail")
    assert body_hit.document_id == parent.id and body_hit.source_name == str(mail)
    (html_hit,) = await led.index.search("flamingo", batch_id="mail")
    assert html_hit.source_name == str(html) and "<b>" not in html_hit.text
    (pdf_hit,) = await led.index.search("pelican", batch_id="mail")
    assert pdf_hit.source_name == f"{mail}!/report.pdf"
    # The body file was the parent's own: only the attachments' files stay.
    (attempt,) = (led.settings.storage / MEMBERS_FOLDER / str(parent.id)).iterdir()
    assert sorted(os.listdir(attempt)) == ["0.pdf", "1.docx"]
    check_index_invariants(db_url)
    check_children_invariants(db_url)


async def test_a_bomb_fails_its_parent_and_creates_no_child(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    bomb = cf.make_tar(tmp_path / "bomb.tar.gz", {"zeros.txt": bytes(32 * 2**20)})
    many = cf.make_zip(tmp_path / "many.zip", {f"{i}.txt": b"x" for i in range(10_000)})
    await run_batch(led, BatchSpec(id="bombs", processor="ingest"), [bomb, many])
    docs = await documents_of(led, "bombs")
    assert len(docs) == 2
    for doc in docs:
        assert doc.status is DocumentStatus.FAILED and doc.error_code == "archive_too_large"
        assert doc.attempts == 1
    members = led.settings.storage / MEMBERS_FOLDER
    assert not members.exists() or os.listdir(members) == []


async def run_again(ledger: Ledger, batch_id: str, paths: list[Path], **options: Any) -> None:
    spec = BatchSpec(id=batch_id, processor="ingest", options=options)
    await ledger.queue.submit(spec, source_specs(paths))
    await Worker(ledger, batch_ids=[batch_id]).run(until_complete=True)


async def test_a_rerun_keeps_unchanged_children_and_replaces_changed_ones(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    box = cf.make_zip(tmp_path / "box.zip", {"a.txt": b"first alpha\n", "b.txt": b"beta\n"})
    await run_again(led, "rerun", [box])
    before = {d.id: d for d in await documents_of(led, "rerun")}
    assert len(before) == 3
    await run_again(led, "rerun", [box])  # unchanged: nothing runs again
    assert {d.id: d.status for d in await documents_of(led, "rerun")} == {
        i: d.status for i, d in before.items()
    }
    cf.make_zip(tmp_path / "box.zip", {"a.txt": b"second gamma\n"})
    os.utime(box, ns=(1, 1))  # a different mtime even within the clock's resolution
    await run_again(led, "rerun", [box])
    after = await documents_of(led, "rerun")
    parent = next(d for d in after if d.parent_id is None)
    assert parent.id in before
    (child,) = [d for d in after if d.parent_id == parent.id]
    # A new row (SQLite may give it a freed id): made after the first run's children.
    assert child.member_path == "a.txt"
    assert child.created_at > max(d.created_at for d in before.values())
    assert child.status is DocumentStatus.DONE
    assert await led.index.search("gamma", batch_id="rerun")
    assert not await led.index.search("beta", batch_id="rerun")
    # The first run's member files went with the children they were: one attempt's remain.
    (attempt,) = (led.settings.storage / MEMBERS_FOLDER / str(parent.id)).iterdir()
    assert os.listdir(attempt) == ["0.txt"]
    assert child.source == str(attempt / "0.txt")
    check_index_invariants(db_url)
    check_children_invariants(db_url)
    batch = await led.reads.batch("rerun")
    assert batch.total == 2 and batch.complete


async def test_deleting_the_batch_removes_member_files(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    inner = cf.make_zip(tmp_path / "inner.zip", {"c.txt": b"gamma\n"})
    box = cf.make_zip(
        tmp_path / "box.zip",
        {"a.txt": b"alpha\n", "b.txt": b"beta\n", "inner.zip": inner.read_bytes()},
    )
    await run_batch(led, BatchSpec(id="gone", processor="ingest"), [box])
    docs = await documents_of(led, "gone")
    assert len(docs) == 5
    # What an attempt killed before its finish left behind goes with the batch too.
    parent = next(d for d in docs if d.parent_id is None)
    stray = led.settings.storage / MEMBERS_FOLDER / str(parent.id) / "9.txt.partial"
    stray.write_bytes(b"left by a killed attempt")
    # Two rows a step: a parent and its children go in different transactions.
    report = await deletion.delete_batch(led.runner, "gone", owner=None, force=False, step_rows=2)
    assert report.files == 5  # a.txt, b.txt, inner.zip, inner.zip's c.txt, the stray one
    members = led.settings.storage / MEMBERS_FOLDER
    assert not members.exists() or os.listdir(members) == []
    assert sql(sync_url_of(db_url), "SELECT count(*) FROM documents") == [(0,)]
    assert box.exists()  # the submitted archive itself is never touched


async def test_a_new_batch_of_the_same_folder_skips_an_unchanged_archive(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    box = cf.make_zip(tmp_path / "box.zip", {"a.txt": b"alpha\n", "b.txt": b"beta\n"})
    await run_batch(led, BatchSpec(id="one", processor="ingest"), [box])
    # What `ledger ingest` does on a re-run: a new batch that skips unchanged sources.
    again = await led.queue.submit(
        BatchSpec(id="two", processor="ingest"), source_specs([box]), skip_unchanged=UnchangedSkip()
    )
    assert again.skipped == 1
    await Worker(led, batch_ids=["two"]).run(until_complete=True)
    (doc,) = await documents_of(led, "two")
    assert doc.status is DocumentStatus.SKIPPED
    assert len(await documents_of(led, "one")) == 3  # the children stay where they are
    check_children_invariants(db_url)


async def test_nesting_past_the_depth_is_refused_where_it_starts(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    # level4.zip inside level3.zip inside level2.zip inside level1.zip: the fourth level
    # would sit 3 deep, past max_archive_depth=3.
    inner = cf.make_zip(tmp_path / "level4.zip", {"deepest.txt": b"too deep\n"})
    for level in (3, 2, 1):
        inner = cf.make_zip(
            tmp_path / f"level{level}.zip",
            {f"level{level + 1}.zip": inner.read_bytes(), f"note{level}.txt": b"note %d\n" % level},
        )
    await run_batch(led, BatchSpec(id="deep", processor="ingest"), [inner])
    docs = await documents_of(led, "deep")
    assert all(d.status is DocumentStatus.DONE for d in docs), [
        (d.member_path, d.error_code) for d in docs
    ]
    assert sorted(d.member_path or "" for d in docs) == [
        "", "level2.zip", "level3.zip", "note1.txt", "note2.txt", "note3.txt",
    ]  # fmt: skip
    level3 = next(d for d in docs if d.member_path == "level3.zip")
    assert level3.result is not None
    assert level3.result["skipped"] == [
        {"member": "level4.zip", "reason": "refused: nested more than 3 deep"}
    ]
    check_children_invariants(db_url)
