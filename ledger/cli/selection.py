"""Is this path one of the files ``ledger ingest`` was asked for? The walk's choice, for one
path at a time.

A folder sync asks it of every document of the batch (is its file still there, and still
selected by the same glob, include/exclude, hidden and symbolic-link rules?) and a watcher
asks it of every path an event names. It decides as :func:`ledger.cli.walk.walk` does, so a
sync retires exactly the documents a fresh walk would no longer yield.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ledger.cli.walk import _inside, matches_pattern
from ledger.path_patterns import PathPatterns
from ledger.text import is_utf8

if TYPE_CHECKING:
    from ledger.model import SourceSpec


@dataclass(frozen=True)
class Selection:
    """The walk's rules for one ``ledger ingest`` command."""

    roots: Sequence[Path]
    pattern: str | None = None
    hidden: bool = False
    follow_symlinks: bool = False
    patterns: PathPatterns | None = None

    def root_of(self, path: str) -> tuple[Path, str] | None:
        """The root ``path`` lies under and its path relative to it ("" for a root that is
        the file itself); None when it is under none."""
        for root in self.roots:
            base = str(root)
            if path == base:
                return root, ""
            if path.startswith(base.rstrip(os.sep) + os.sep):
                return root, os.path.relpath(path, base).replace(os.sep, "/")
        return None

    def spec(self, path: str) -> SourceSpec | None:
        """The source to submit for ``path``, or None when the walk would not yield it (gone,
        not a regular file, left out by the rules)."""
        from ledger.model import SourceSpec  # loads msgspec: not at --help

        found = self.root_of(path)
        if found is None or not is_utf8(path):
            return None
        root, relative = found
        if relative:
            parts = relative.split("/")
            if not self.hidden and any(part.startswith(".") for part in parts):
                return None
            if not matches_pattern(relative, self.pattern) or (
                self.patterns is not None and not self.patterns.matches(relative)
            ):
                return None
            # The walk never enters a symbolic link to a folder.
            folder = str(root)
            for part in parts[:-1]:
                folder = os.path.join(folder, part)
                if os.path.islink(folder):
                    return None
            outside = os.path.islink(path) and not _inside(os.path.realpath(path), root)
            if outside and not self.follow_symlinks:
                return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return SourceSpec(source=path, size=st.st_size, mtime_ns=st.st_mtime_ns)

    def still_there(self, path: str) -> bool:
        """True while ``path`` is a file the walk would yield. A source under none of the
        roots (another folder submitted into the same batch, an upload, an object) is not
        this command's to judge: it counts as there."""
        if self.root_of(path) is None:
            return True
        return self.spec(path) is not None

    def below(self, folder: str) -> Iterator[SourceSpec]:
        """The selected files at any depth under ``folder`` (a folder that appeared, or was
        moved in, while watching), lazily: memory follows the depth, not the file count."""
        pending = [folder]
        while pending:
            current = pending.pop()
            try:
                with os.scandir(current) as entries:
                    for entry in entries:
                        try:
                            is_dir = entry.is_dir(follow_symlinks=False)
                        except OSError:
                            continue
                        if is_dir:
                            if self.hidden or not entry.name.startswith("."):
                                pending.append(entry.path)
                            continue
                        spec = self.spec(entry.path)
                        if spec is not None:
                            yield spec
            except OSError:
                continue
