"""The lazy walk behind ``ledger ingest`` and the batch id derived from a command."""

from __future__ import annotations

import os
from pathlib import Path

from ledger.cli.walk import WalkStats, batch_id_for, walk


def test_walk_yields_files_lazily_and_skips_what_it_should(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one.txt").write_text("1")
    (tmp_path / "a" / "b" / "two.md").write_text("22")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("x")
    os.symlink(tmp_path / "a", tmp_path / "loop")  # a link to a folder: not followed
    os.symlink(tmp_path / "missing", tmp_path / "broken.txt")
    stats = WalkStats()

    iterator = walk([tmp_path], stats=stats)
    assert not isinstance(iterator, list)
    found = {Path(s.source).relative_to(tmp_path).as_posix(): s for s in iterator}

    assert set(found) == {"a/one.txt", "a/b/two.md"}
    assert found["a/b/two.md"].size == 2
    assert found["a/one.txt"].mtime_ns == (tmp_path / "a" / "one.txt").stat().st_mtime_ns
    assert stats.files == 2
    assert len(stats.unreadable) == 1
    assert "broken.txt" in stats.unreadable[0]

    assert {Path(s.source).name for s in walk([tmp_path], pattern="*.md")} == {"two.md"}
    hidden = {Path(s.source).name for s in walk([tmp_path], hidden=True)}
    assert "config" in hidden


def test_batch_id_is_stable_and_depends_on_what_was_asked(tmp_path: Path) -> None:
    def make(**changes: object) -> str:
        args: dict[str, object] = {
            "pattern": None,
            "hidden": False,
            "processor": "noop",
            "options": {"a": 1, "b": 2},
        }
        args.update(changes)
        return batch_id_for([tmp_path / "My Docs!"], **args)  # type: ignore[arg-type]

    first = make()
    assert first == make(options={"b": 2, "a": 1})  # key order does not matter
    assert first.startswith("My-Docs-")
    assert len({first, make(pattern="*.pdf"), make(hidden=True), make(processor="sleep")}) == 4
    assert make(options={"a": 2, "b": 2}) != first
