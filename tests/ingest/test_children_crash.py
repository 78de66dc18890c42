"""A worker process killed with SIGKILL while it expands archives, then resumed: every member
becomes exactly one child document, indexed once, and no row or member file is left over."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec
from ledger.storage import MEMBERS_FOLDER
from tests.conftest import sql
from tests.ingest import container_fixtures as cf
from tests.ingest.test_children import check_children_invariants
from tests.pipeline.support import (
    check_index_invariants,
    source_specs,
    sync_url_of,
)
from tests.pipeline.test_exactly_once import kill_once, start_worker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
ARCHIVES = 4
MEMBERS = 80


def member_files(members: Path) -> set[str]:
    if not members.exists():
        return set()
    return {str(p) for p in members.rglob("*") if p.is_file()}


async def test_sigkill_while_expanding_then_resume_makes_each_child_once(
    led: Ledger, db_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    archives = []
    for a in range(ARCHIVES):
        members = {f"part{a}/m{i}.txt": f"archive {a} member {i} words\n".encode() * 40
                   for i in range(MEMBERS)}  # fmt: skip
        make = cf.make_zip if a % 2 else cf.make_tar
        name = f"box{a}.zip" if a % 2 else f"box{a}.tar.gz"
        archives.append(make(folder / name, members))
    # Two kills may land on the same archive; a loaded machine may cost one more attempt.
    spec = BatchSpec(id="crash", processor="ingest", max_attempts=6)
    await led.queue.submit(spec, source_specs(archives))
    url = sync_url_of(db_url)
    home = tmp_path / "worker-home"
    members_root = home / "storage" / MEMBERS_FOLDER

    def children() -> int:
        return int(sql(url, "SELECT count(*) FROM documents WHERE parent_id IS NOT NULL")[0][0])

    # First kill: as soon as member files appear (an expansion under way, or just done and
    # not yet recorded). Second: once some children exist and are being worked.
    for ready in (lambda: bool(member_files(members_root)), lambda: children() >= MEMBERS):
        proc = start_worker(db_url, home, "crash")
        kill_once(proc, ready, timeout=90)
        check_index_invariants(db_url)
        check_children_invariants(db_url)
        # Whatever the moment: a parent has all of its children or none.
        counts = sql(
            url,
            "SELECT parent_id, count(*) FROM documents WHERE parent_id IS NOT NULL "
            "GROUP BY parent_id",
        )
        assert all(n == MEMBERS for _, n in counts), counts
    proc = start_worker(db_url, home, "crash")
    assert proc.wait(timeout=150) == 0

    batch = await led.reads.batch("crash")
    assert batch.complete and batch.total == ARCHIVES * (MEMBERS + 1)
    assert sql(url, "SELECT status, count(*) FROM documents GROUP BY status") == [
        ("done", ARCHIVES * (MEMBERS + 1))
    ]
    check_index_invariants(db_url)
    check_children_invariants(db_url)
    # Each member once, under its own parent; each child's text indexed once.
    pairs = sql(
        url,
        "SELECT count(DISTINCT p.source || '!' || c.member_path) FROM documents c "
        "JOIN documents p ON p.id = c.parent_id",
    )
    assert pairs == [(ARCHIVES * MEMBERS,)]
    indexed = sql(url, "SELECT count(DISTINCT document_id) FROM chunks")
    assert indexed == [(ARCHIVES * MEMBERS,)]
    # No orphan file: exactly the children's files are in the members folder.
    sources = {r[0] for r in sql(url, "SELECT source FROM documents WHERE parent_id IS NOT NULL")}
    assert member_files(members_root) == sources
    assert not any(name.endswith(".partial") for name in os.listdir(home / "storage"))
