"""Incremental re-ingest: unchanged files are skipped without extraction, changed files
replace their chunks atomically, deleted files show up in the plan."""

from __future__ import annotations

import os
from pathlib import Path

from ledger.app import Ledger
from ledger.model import BatchSpec, DocumentInfo, SourceSpec, UnchangedSkip
from ledger.processors.builtin import unchanged_skip
from ledger.states import DocumentStatus
from ledger.worker.pool import ProcessPool
from ledger.worker.runtime import Worker
from tests.conftest import sql
from tests.ingest import fixtures as fx
from tests.pipeline.support import (
    MEMORY_LIMIT_MB,
    check_index_invariants,
    source_specs,
    sync_url_of,
)


def make_folder(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "a.txt": "Alpha file about the aardvark. " + " ".join(fx.sentences(1, 30)),
        "b.txt": "Bravo file about the bison. " + " ".join(fx.sentences(2, 30)),
        "c.md": "# Charlie\n\nAbout the chinchilla. " + " ".join(fx.sentences(3, 30)),
    }
    paths = {}
    for name, text in files.items():
        paths[name] = folder / name
        paths[name].write_text(text, encoding="utf-8")
    paths["d.pdf"] = fx.make_pdf(folder / "d.pdf", ["Delta page about the dingo.", "Page two."])
    return paths


async def work(led: Ledger, batch_id: str, pool: ProcessPool | None = None) -> None:
    await Worker(led, batch_ids=[batch_id], pool=pool).run(until_complete=True)


async def ingest(
    led: Ledger, batch_id: str, paths: list[Path], *, owner: str | None = None, **options: object
) -> dict[str, DocumentInfo]:
    await led.queue.submit(
        BatchSpec(id=batch_id, processor="ingest", owner=owner, options=dict(options)),
        source_specs(paths),
    )
    await work(led, batch_id)
    return {d.source: d for d in (await led.reads.documents(batch_id, limit=1000)).items}


async def sources_for(led: Ledger, word: str) -> set[str]:
    return {h.source for h in await led.index.search(word, 50)}


async def test_unchanged_files_are_skipped_without_extraction(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    paths = make_folder(tmp_path / "docs")
    first = await ingest(led, "first", list(paths.values()))
    assert {d.status for d in first.values()} == {DocumentStatus.DONE}

    # Same folder, a new batch: a pool of our own shows whether anything was extracted.
    await led.queue.submit(BatchSpec(id="again", processor="ingest"), source_specs(paths.values()))
    async with ProcessPool(2, memory_limit_bytes=MEMORY_LIMIT_MB * 2**20) as pool:
        await work(led, "again", pool)
        assert pool.child_pids() == []  # no child was ever needed
    again = {d.source: d for d in (await led.reads.documents("again")).items}
    for source, doc in again.items():
        assert doc.status is DocumentStatus.SKIPPED
        holder = first[source]
        assert doc.result == {
            "reason": f"unchanged: same content as document {holder.id}",
            "duplicate_of": holder.id,
            "sha256": holder.sha256,
        }
    # Search still returns each text once, from the first batch.
    hits = await led.index.search("aardvark", 10)
    assert [h.document_id for h in hits] == [first[str(paths["a.txt"])].id]
    check_index_invariants(db_url)


async def test_unchanged_files_are_skipped_at_submit(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    paths = make_folder(tmp_path / "docs")
    first = await ingest(led, "first", list(paths.values()))
    changed = str(paths["a.txt"])
    paths["a.txt"].write_text("Alpha rewritten: now about the axolotl only.", encoding="utf-8")

    spec = BatchSpec(id="again", processor="ingest")
    result = await led.queue.submit(
        spec, source_specs(paths.values()), skip_unchanged=unchanged_skip(spec)
    )
    assert (result.added, result.skipped) == (4, 3)
    again = {d.source: d for d in (await led.reads.documents("again")).items}
    assert again[changed].status is DocumentStatus.PENDING
    for source, doc in again.items():
        if source == changed:
            continue
        holder = first[source]
        assert doc.status is DocumentStatus.SKIPPED
        # The same record as when a worker decides it, but no attempt was made.
        assert doc.result == {
            "reason": f"unchanged: same content as document {holder.id}",
            "duplicate_of": holder.id,
            "sha256": holder.sha256,
        }
        assert doc.attempts == 0
    sync = sync_url_of(db_url)
    assert sql(sync, "SELECT count(*) FROM attempts WHERE batch_id = 'again'") == [(0,)]
    # The counters saw it, and only the changed file is left to a worker.
    assert sql(sync, "SELECT n_pending, n_skipped FROM batches WHERE id = 'again'") == [(1, 3)]
    stats = await Worker(led, batch_ids=["again"]).run(until_complete=True)
    assert stats.done == 1
    assert (await led.reads.document(again[changed].id))[0].status is DocumentStatus.DONE
    assert [h.source for h in await led.index.search("axolotl", 5)] == [changed]
    check_index_invariants(db_url)


async def test_a_batch_of_unchanged_files_is_complete_at_submit(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    paths = make_folder(tmp_path / "docs")
    await ingest(led, "first", list(paths.values()))
    spec = BatchSpec(id="again", processor="ingest")
    result = await led.queue.submit(
        spec, source_specs(paths.values()), skip_unchanged=unchanged_skip(spec)
    )
    assert result.skipped == 4
    assert result.batch.complete and result.batch.completed_at is not None
    sync = sync_url_of(db_url)
    kinds = sql(sync, "SELECT kind FROM events WHERE batch_id = 'again' ORDER BY id")
    assert [k for (k,) in kinds] == ["batch_created", "documents_skipped", "batch_completed"]
    # Documents nobody processed say nothing about the pace.
    assert (await led.reads.progress("again")).rate in (0.0, None)
    # Submitting them again (same batch) finds them known and changes nothing.
    same = await led.queue.submit(
        spec, source_specs(paths.values()), skip_unchanged=unchanged_skip(spec)
    )
    assert (same.added, same.known, same.skipped) == (0, 4, 0)
    assert (await Worker(led, batch_ids=["again"]).run(until_complete=True)).done == 0
    # A complete batch given one more indexed file stays complete: no reopening, no
    # second completion.
    paths["e.txt"] = tmp_path / "docs" / "e.txt"
    paths["e.txt"].write_text("Echo file about the emu.", encoding="utf-8")
    await ingest(led, "echo", [paths["e.txt"]])
    more = await led.queue.submit(
        spec, source_specs(paths.values()), skip_unchanged=unchanged_skip(spec)
    )
    assert (more.added, more.known, more.skipped) == (1, 4, 1)
    assert more.batch.completed_at == result.batch.completed_at
    kinds = sql(sync, "SELECT kind FROM events WHERE batch_id = 'again' ORDER BY id")
    assert [k for (k,) in kinds][3:] == ["documents_added", "documents_skipped"]


async def test_submit_skips_only_what_the_processor_would(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    paths = make_folder(tmp_path / "docs")
    await ingest(led, "first", list(paths.values()), owner="tenant-a")
    specs = source_specs(paths.values())
    assert unchanged_skip(BatchSpec(processor="noop")) is None
    assert unchanged_skip(BatchSpec(processor="ingest", options={"reprocess": True})) is None
    assert unchanged_skip(BatchSpec(processor="ingest", options={"chunk_size": "x"})) is None
    # Another tenant's index is not this one's.
    other = BatchSpec(id="other", processor="ingest", owner="tenant-b")
    assert (await led.queue.submit(other, specs, skip_unchanged=unchanged_skip(other))).skipped == 0
    # Holders without the asked model's vectors do not count.
    mine = BatchSpec(id="mine", processor="ingest", owner="tenant-a")
    with_model = await led.queue.submit(mine, specs, skip_unchanged=UnchangedSkip(model="absent"))
    assert with_model.skipped == 0
    # A file whose recorded facts differ is not skipped at submit (the worker hashes it).
    touched = [SourceSpec(s.source, size=s.size, mtime_ns=(s.mtime_ns or 0) + 1) for s in specs]
    late = BatchSpec(id="late", processor="ingest", owner="tenant-a")
    assert (await led.queue.submit(late, touched, skip_unchanged=unchanged_skip(late))).skipped == 0
    sync = sync_url_of(db_url)
    pending = "SELECT count(*) FROM documents WHERE status = 'pending'"
    assert sql(sync, pending) == [(12,)]


async def test_touched_file_with_same_content_is_hashed_not_extracted(
    led: Ledger, tmp_path: Path
) -> None:
    paths = make_folder(tmp_path / "docs")
    first = await ingest(led, "first", list(paths.values()))
    st = os.stat(paths["b.txt"])
    os.utime(paths["b.txt"], ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    await led.queue.submit(
        BatchSpec(id="touched", processor="ingest"), source_specs([paths["b.txt"]])
    )
    async with ProcessPool(1) as pool:
        await work(led, "touched", pool)
        assert pool.child_pids() == []
    (doc,) = (await led.reads.documents("touched")).items
    assert doc.status is DocumentStatus.SKIPPED
    assert doc.result is not None
    assert doc.result["duplicate_of"] == first[str(paths["b.txt"])].id
    assert doc.result["reason"].startswith("unchanged: same content")


async def test_changed_file_replaces_its_chunks(led: Ledger, db_url: str, tmp_path: Path) -> None:
    paths = make_folder(tmp_path / "docs")
    first = await ingest(led, "first", list(paths.values()))
    paths["a.txt"].write_text("Alpha rewritten: now about the axolotl only.", encoding="utf-8")
    second = await ingest(led, "second", list(paths.values()))
    a = str(paths["a.txt"])
    assert second[a].status is DocumentStatus.DONE
    assert {second[str(p)].status for n, p in paths.items() if n != "a.txt"} == {
        DocumentStatus.SKIPPED
    }
    assert await sources_for(led, "aardvark") == set()  # the old text is gone
    hits = await led.index.search("axolotl", 5)
    assert [(h.source, h.document_id) for h in hits] == [(a, second[a].id)]
    url = sync_url_of(db_url)
    assert sql(url, f"SELECT superseded_by FROM documents WHERE id = {first[a].id}") == [
        (second[a].id,)
    ]
    check_index_invariants(db_url)

    # And back to the first content: a new run again, not a skip to the superseded one.
    paths["a.txt"].write_text(
        "Alpha file about the aardvark. " + " ".join(fx.sentences(1, 30)), encoding="utf-8"
    )
    third = await ingest(led, "third", [paths["a.txt"]])
    assert third[a].status is DocumentStatus.DONE
    assert await sources_for(led, "aardvark") == {a}
    assert await sources_for(led, "axolotl") == set()
    check_index_invariants(db_url)


async def test_resubmitting_the_same_batch_requeues_changed_sources(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    paths = make_folder(tmp_path / "docs")
    first = await ingest(led, "same", list(paths.values()))
    paths["c.md"].write_text("# Charlie\n\nNow about the capybara.", encoding="utf-8")
    result = await led.queue.submit(
        BatchSpec(id="same", processor="ingest"), source_specs(paths.values())
    )
    assert result.requeued == 1 and result.added == 0 and result.known == 4
    assert result.batch.counts[DocumentStatus.PENDING] == 1
    assert result.batch.completed_at is None
    c = str(paths["c.md"])
    # Until the new run is stored, search serves the previous version.
    assert await sources_for(led, "chinchilla") == {c}
    await work(led, "same")
    after = {d.source: d for d in (await led.reads.documents("same")).items}
    assert after[c].id == first[c].id and after[c].status is DocumentStatus.DONE
    assert after[c].sha256 != first[c].sha256
    assert await sources_for(led, "chinchilla") == set()
    assert await sources_for(led, "capybara") == {c}
    kinds = [e.kind for e in await led.reads.events("same")]
    assert "documents_requeued" in kinds and kinds.count("batch_completed") == 2
    check_index_invariants(db_url)


async def test_duplicate_content_elsewhere_and_reprocess_and_owners(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    paths = make_folder(tmp_path / "docs")
    first = await ingest(led, "first", list(paths.values()))
    copy = tmp_path / "copy-of-b.txt"
    copy.write_bytes(paths["b.txt"].read_bytes())
    dup = await ingest(led, "dup", [copy])
    doc = dup[str(copy)]
    assert doc.status is DocumentStatus.SKIPPED
    assert doc.result is not None
    assert doc.result["reason"] == (
        f"duplicate: same content as document {first[str(paths['b.txt'])].id}"
    )
    # reprocess: extracted again, the new document holds the chunks.
    forced = await ingest(led, "forced", [paths["b.txt"]], reprocess=True)
    b = str(paths["b.txt"])
    assert forced[b].status is DocumentStatus.DONE
    assert [h.document_id for h in await led.index.search("bison", 5)] == [forced[b].id]
    # Another owner's index is its own: nothing is skipped for bob.
    bob = await ingest(led, "bob", list(paths.values()), owner="bob")
    assert {d.status for d in bob.values()} == {DocumentStatus.DONE}
    assert [h.document_id for h in await led.index.search("bison", 5, owner="bob")] == [bob[b].id]
    check_index_invariants(db_url)


async def test_plan_classifies_sources_and_writes_nothing(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    paths = make_folder(folder)
    await ingest(led, "first", list(paths.values()))
    paths["a.txt"].write_text("changed", encoding="utf-8")
    os.unlink(paths["b.txt"])
    new = folder / "e.txt"
    new.write_text("a new file", encoding="utf-8")
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("not under the root", encoding="utf-8")
    url = sync_url_of(db_url)
    tables = ["batches", "documents", "chunks", "events", "attempts"]
    before = [sql(url, f"SELECT count(*) FROM {t}")[0][0] for t in tables]

    listing = [p for p in folder.iterdir() if p.is_file()]
    spec = BatchSpec(processor="ingest")
    plan = await led.index.plan(
        spec,
        iter(source_specs(listing)),
        skip_unchanged=unchanged_skip(spec),
        roots=[str(folder)],
    )
    assert (plan.new.count, plan.changed.count, plan.unchanged.count, plan.gone.count) == (
        1, 1, 2, 1,
    )  # fmt: skip
    assert plan.new.sources == [str(new)]
    assert plan.changed.sources == [str(paths["a.txt"])]
    assert sorted(plan.unchanged.sources) == sorted([str(paths["c.md"]), str(paths["d.pdf"])])
    assert plan.gone.sources == [str(paths["b.txt"])]
    # Known hashes decide over size and time; without roots, gone is judged in the batch.
    c_indexed = await led.index.indexed_source("first", str(paths["c.md"]))
    assert c_indexed is not None
    c_sha = c_indexed.sha256
    plan = await led.index.plan(
        BatchSpec(id="first", processor="ingest"),
        [
            SourceSpec(str(paths["c.md"]), sha256=c_sha),
            SourceSpec(str(paths["d.pdf"]), sha256="0" * 64),
        ],
        skip_unchanged=unchanged_skip(spec),
        listed=1,
    )
    assert (plan.unchanged.count, plan.changed.count, plan.gone.count) == (1, 1, 2)
    assert len(plan.gone.sources) == 1  # listed=1 caps the lists, not the counts
    # Another owner has nothing indexed.
    bob = BatchSpec(owner="bob", processor="ingest")
    plan = await led.index.plan(bob, source_specs(listing), skip_unchanged=unchanged_skip(bob))
    assert plan.new.count == 4 and plan.gone.count == 0
    assert [sql(url, f"SELECT count(*) FROM {t}")[0][0] for t in tables] == before


async def submitted_groups(led: Ledger, batch_id: str) -> dict[str, set[str]]:
    """What the real submission did with each source: skipped at submit or to process."""
    docs = (await led.reads.documents(batch_id, limit=1000)).items
    return {
        "unchanged": {d.source for d in docs if d.status == DocumentStatus.SKIPPED},
        "to_process": {d.source for d in docs if d.status == DocumentStatus.PENDING},
    }


async def test_plan_and_submit_agree_on_what_is_unchanged(led: Ledger, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    paths = make_folder(folder)
    await ingest(led, "first", list(paths.values()))
    paths["a.txt"].write_text("changed", encoding="utf-8")
    # Same content, new modification time: the submit-time check needs the same size and
    # time, so the worker (which hashes) decides; the plan must not call it unchanged.
    stat = paths["b.txt"].stat()
    os.utime(paths["b.txt"], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    (folder / "e.txt").write_text("a new file", encoding="utf-8")
    listing = sorted(p for p in folder.iterdir() if p.is_file())

    for batch_id, options in (("again", {}), ("forced", {"reprocess": True})):
        spec = BatchSpec(id=batch_id, processor="ingest", options=options)
        skip = unchanged_skip(spec)
        plan = await led.index.plan(spec, source_specs(listing), skip_unchanged=skip)
        result = await led.queue.submit(spec, source_specs(listing), skip_unchanged=skip)
        done = await submitted_groups(led, batch_id)
        assert set(plan.unchanged.sources) == done["unchanged"], batch_id
        assert set(plan.new.sources) | set(plan.changed.sources) == done["to_process"]
        assert plan.unchanged.count == result.skipped
        assert plan.new.count + plan.changed.count == result.added - result.skipped
        assert set(plan.new.sources) == {str(folder / "e.txt")}
    # Without reprocess, c.md and d.pdf are unchanged; with it nothing is skipped at submit.
    spec = BatchSpec(id="again", processor="ingest")
    assert (await submitted_groups(led, "again"))["unchanged"] == {
        str(paths["c.md"]),
        str(paths["d.pdf"]),
    }
    assert (await submitted_groups(led, "forced"))["unchanged"] == set()

    # Resubmitting to a known batch: its documents are unchanged unless their facts differ.
    paths["c.md"].write_text("# Charlie\n\nRewritten.", encoding="utf-8")
    skip = unchanged_skip(spec)
    plan = await led.index.plan(spec, source_specs(listing), skip_unchanged=skip)
    result = await led.queue.submit(spec, source_specs(listing), skip_unchanged=skip)
    assert plan.changed.sources == [str(paths["c.md"])] and result.requeued == 1
    assert plan.unchanged.count == result.known - result.requeued == len(listing) - 1
    assert plan.new.count == 0 and result.added == 0


async def test_copies_in_one_batch_are_indexed_once(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    """Copies claimed and finished together (one claim, one commit group) are still found:
    one document holds the chunks, the others are skipped as its duplicates."""
    folder = tmp_path / "copies"
    folder.mkdir()
    text = "Echo file about the emu. " + " ".join(fx.sentences(5, 30))
    copies = [folder / f"copy-{n}.txt" for n in range(8)]
    for path in copies:
        path.write_text(text, encoding="utf-8")
    docs = await ingest(led, "copies", copies)
    done = [d for d in docs.values() if d.status is DocumentStatus.DONE]
    assert len(done) == 1, [(d.source, d.status, d.result) for d in docs.values()]
    holder = done[0]
    for doc in docs.values():
        if doc is holder:
            continue
        assert doc.status is DocumentStatus.SKIPPED
        assert doc.result is not None and doc.result["duplicate_of"] == holder.id
    assert await sources_for(led, "emu") == {holder.source}
    check_index_invariants(db_url)
