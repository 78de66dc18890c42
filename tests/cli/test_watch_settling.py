"""The watcher's settling of changed paths, on real files with a hand-moved clock: a path
is taken once quiet for the debounce and unchanged over it, so a file still growing waits;
temporary names are never taken."""

from __future__ import annotations

from pathlib import Path

from ledger.cli.selection import Selection
from ledger.cli.watch import ChangeSet, Settling, ignored, temporary


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_growing_file_waits_until_it_stops_changing(tmp_path: Path) -> None:
    clock = Clock()
    settling = Settling(debounce=1.0, clock=clock)
    growing = tmp_path / "big.txt"
    growing.write_text("part one\n")
    settling.note(str(growing), appeared=True)
    assert settling.settled() == []  # not quiet for the debounce yet
    clock.now += 1.5
    with growing.open("a") as handle:  # written to without an event reaching us yet
        handle.write("part two\n")
    assert settling.settled() == []  # it moved over the debounce: wait again
    clock.now += 0.5
    assert settling.settled() == []
    clock.now += 0.6
    assert settling.settled() == [(str(growing), True)]
    assert len(settling) == 0


def test_a_change_set_sorts_files_folders_and_gone(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "new-folder").mkdir(parents=True)
    (root / "new-folder" / "inside.txt").write_text("x")
    (root / "file.txt").write_text("y")
    (root / "old-folder").mkdir()
    selection = Selection(roots=[root])
    change = ChangeSet.of(
        [
            (str(root / "file.txt"), False),
            (str(root / "new-folder"), True),
            (str(root / "old-folder"), False),  # a folder's own "modified": nothing to do
            (str(root / "deleted.txt"), False),
        ],
        selection,
    )
    assert [s.source for s in change.sources] == [str(root / "file.txt")]
    assert change.folders == [str(root / "new-folder")]
    assert change.gone == [str(root / "deleted.txt")]
    assert [s.source for s in change.all_sources(selection)] == [
        str(root / "file.txt"),
        str(root / "new-folder" / "inside.txt"),
    ]


def test_temporary_names() -> None:
    for name in ("a.part", "b.tmp", "c.crdownload", "d.txt~", ".e.txt", "f.swp"):
        assert temporary(f"/w/{name}", hidden=False), name
    assert not temporary("/w/.e.txt", hidden=True)
    assert not temporary("/w/report.pdf", hidden=False)


def test_events_inside_hidden_folders_are_ignored(tmp_path: Path) -> None:
    root = tmp_path / "root"
    plain = Selection(roots=[root])
    assert ignored(str(root / ".git" / "objects" / "ab"), plain)
    assert ignored(str(root / "a" / "draft.txt.part"), plain)
    assert not ignored(str(root / "a" / "report.txt"), plain)
    assert not ignored(str(root / ".git" / "HEAD"), Selection(roots=[root], hidden=True))
