"""Finding the files to ingest, lazily, and naming the batch they make.

The walk never holds a list of files: it yields one :class:`SourceSpec` at a time while it
reads directories, so a tree of millions of files costs memory in proportion to its depth
and the directories still to visit, not to its files.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import itertools
import json
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.path_patterns import PathPatterns
from ledger.text import escaped
from ledger.text import is_utf8 as decodable

if TYPE_CHECKING:
    from ledger.model import SourceSpec

EXAMPLES = 5  # examples kept per kind of skipped entry: enough to find them, bounded


@dataclass
class WalkStats:
    """What the walk saw, updated as it goes (the progress display reads it)."""

    files: int = 0  # files yielded
    unreadable: list[str] = field(default_factory=list)  # broken links, folders we may not read
    # Names that are not UTF-8: no database column can hold them faithfully, and a row the
    # driver cannot decode would stop every worker that claims it.
    unreadable_names: int = 0
    unreadable_name_examples: list[str] = field(default_factory=list)
    # Symbolic links whose target lies outside the folder being ingested.
    outside_links: int = 0
    outside_link_examples: list[str] = field(default_factory=list)
    # Files left out by the pattern: with none taken, they tell the user what it was matched to.
    unmatched: int = 0
    unmatched_example: str | None = None  # a path relative to its root, as the pattern sees it

    def note_unmatched(self, relative: str) -> None:
        self.unmatched += 1
        if self.unmatched_example is None:
            self.unmatched_example = escaped(relative)

    def note_unreadable(self, path: str, exc: OSError) -> None:
        if len(self.unreadable) < 1000:  # bounded: a few examples are enough to report
            self.unreadable.append(f"{path}: {exc.strerror or exc}")

    def note_unreadable_name(self, path: str) -> None:
        self.unreadable_names += 1
        if len(self.unreadable_name_examples) < EXAMPLES:
            self.unreadable_name_examples.append(escaped(path))

    def note_outside_link(self, path: str, target: str) -> None:
        self.outside_links += 1
        if len(self.outside_link_examples) < EXAMPLES:
            self.outside_link_examples.append(f"{escaped(path)} -> {escaped(target)}")


def _inside(target: str, root: Path) -> bool:
    base = str(root)
    return target == base or target.startswith(base.rstrip(os.sep) + os.sep)


def resolve_roots(paths: Sequence[str]) -> list[Path]:
    """The absolute, resolved form of each path, duplicates dropped, order kept.

    Raises FileNotFoundError naming the first path that does not exist, and
    UnicodeError naming the first whose name is not UTF-8.
    """
    roots: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise FileNotFoundError(raw)
        resolved = path.resolve()
        if not decodable(str(resolved)):
            raise UnicodeError(escaped(str(resolved)))
        if resolved not in roots:
            roots.append(resolved)
    return roots


GLOBSTAR = "**/"
MAX_GLOBSTARS = 8  # each `**/` doubles the patterns tried; real patterns have one or two


def matches_pattern(relative: str, pattern: str | None) -> bool:
    """Whether ``relative`` (a path below its root) matches the glob ``pattern``."""
    return pattern is None or any(fnmatch.fnmatchcase(relative, p) for p in _variants(pattern))


@functools.lru_cache(maxsize=64)
def _variants(pattern: str) -> tuple[str, ...]:
    """The fnmatch patterns that together mean ``pattern`` as people write globs.

    fnmatch's `*` also matches `/`, so `*.pdf` selects PDFs at any depth and `**/` already
    stands for one folder or more; `**/` must also stand for none (`**/*.pdf` takes the PDFs
    directly in the folder too), so each `**/` is tried both kept and dropped.
    """
    parts = pattern.split(GLOBSTAR)
    if len(parts) == 1 or len(parts) > MAX_GLOBSTARS + 1:
        return (pattern,)
    variants = []
    for kept in itertools.product((GLOBSTAR, ""), repeat=len(parts) - 1):
        variants.append(parts[0] + "".join(k + p for k, p in zip(kept, parts[1:], strict=True)))
    return tuple(dict.fromkeys(variants))


def walk(
    roots: Sequence[Path],
    *,
    pattern: str | None = None,
    hidden: bool = False,
    follow_symlinks: bool = False,
    stats: WalkStats | None = None,
    patterns: PathPatterns | None = None,
) -> Iterator[SourceSpec]:
    """Yield every regular file under ``roots`` (a root may itself be a file).

    Symbolic links to files inside their root are followed; links whose target lies outside
    it are skipped and counted unless ``follow_symlinks`` (a folder given to ingest must not
    reach beyond itself). Links to folders are never followed (no cycles). Names that are
    not UTF-8 are skipped and counted. Names starting with a dot are left out unless
    ``hidden``. ``pattern`` (a glob) and ``patterns`` (include/exclude) are matched against
    the path relative to its root; a file must satisfy both (a root given as a file is
    always taken).
    """
    stats = stats if stats is not None else WalkStats()
    for root in roots:
        if not root.is_dir():
            spec = _spec(str(root), None, stats)
            if spec is not None:
                yield spec
            continue
        # Every path below comes from scandir of a folder below ``root``, so it starts with
        # this prefix: slicing it off gives what os.path.relpath would, at a fraction of its
        # cost (it normalizes and splits both paths each call: a tenth of a tiny-file ingest).
        prefix = os.path.join(str(root), "")
        pending = [root]
        while pending:
            folder = pending.pop()
            try:
                with os.scandir(folder) as entries:
                    subfolders = []
                    for entry in entries:
                        if not hidden and entry.name.startswith("."):
                            continue
                        if not decodable(entry.path):
                            stats.note_unreadable_name(entry.path)
                            continue
                        try:
                            is_dir = entry.is_dir(follow_symlinks=False)
                        except OSError as exc:
                            stats.note_unreadable(entry.path, exc)
                            continue
                        if is_dir:
                            subfolders.append(Path(entry.path))
                            continue
                        relative = entry.path[len(prefix) :]
                        if os.sep != "/":
                            relative = relative.replace(os.sep, "/")
                        if not matches_pattern(relative, pattern) or (
                            patterns is not None and not patterns.matches(relative)
                        ):
                            stats.note_unmatched(relative)
                            continue
                        if not follow_symlinks and _leads_outside(entry, root, stats):
                            continue
                        spec = _spec(entry.path, entry, stats)
                        if spec is not None:
                            yield spec
            except OSError as exc:
                stats.note_unreadable(str(folder), exc)
                continue
            # Reversed so that folders are visited in the order the directory listed them.
            pending.extend(reversed(subfolders))


def _leads_outside(entry: os.DirEntry[str], root: Path, stats: WalkStats) -> bool:
    """True (and counted) when ``entry`` is a symbolic link whose target is outside ``root``."""
    try:
        if not entry.is_symlink():
            return False
    except OSError:
        return False  # _spec reports what cannot be looked at
    target = os.path.realpath(entry.path)
    if _inside(target, root):
        return False
    stats.note_outside_link(entry.path, target)
    return True


def _spec(path: str, entry: os.DirEntry[str] | None, stats: WalkStats) -> SourceSpec | None:
    from ledger.model import SourceSpec  # loads msgspec: not at --help

    try:
        st = entry.stat() if entry is not None else os.stat(path)
    except OSError as exc:  # a broken symbolic link, or a file removed while we walk
        stats.note_unreadable(path, exc)
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    stats.files += 1
    return SourceSpec(source=path, size=st.st_size, mtime_ns=st.st_mtime_ns)


def batch_id_for(
    roots: Sequence[Path],
    *,
    pattern: str | None,
    hidden: bool,
    processor: str,
    options: dict[str, Any],
    follow_symlinks: bool = False,
    patterns: PathPatterns | None = None,
    objects: Sequence[str] = (),
) -> str:
    """A batch id that is the same whenever the same files are asked for the same way.

    Running the same ``ledger ingest`` command again therefore finds its batch and resumes
    it. The id starts with the first folder's name so people can tell batches apart.
    """
    asked: dict[str, Any] = {
        "paths": [str(r) for r in roots],
        "glob": pattern,
        "hidden": hidden,
        "processor": processor,
        "options": options,
    }
    if follow_symlinks:  # only when given, so ids of earlier commands stay the same
        asked["follow_symlinks"] = True
    if patterns is not None:  # likewise: different selections make different batches
        asked["include"] = list(patterns.include)
        asked["exclude"] = list(patterns.exclude)
    if objects:  # object prefixes (s3://...), only when given
        asked["objects"] = list(objects)
    key = json.dumps(
        asked,
        sort_keys=True,
        separators=(",", ":"),
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    first = roots[0].name if roots else objects[0].rstrip("/").rsplit("/", 1)[-1] if objects else ""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", first).strip("-.")
    return f"{stem[:40]}-{digest}" if stem else f"ingest-{digest}"
