"""Server paths in create requests: confinement to the allowed roots, lazy expansion.

A path is accepted only when its real location (symlinks and ``..`` resolved) is inside one
of the configured roots. Folders are walked once, off the event loop, into a temporary file
of one JSON line per file; the ledger then reads that file lazily while inserting, so a
million-file folder never sits in memory as a list.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import msgspec

from ledger.errors import InvalidInput
from ledger.path_patterns import PathPatterns
from ledger.records import SourceSpec


def _inside(real: Path, roots: Sequence[Path]) -> bool:
    return any(real == root or real.is_relative_to(root) for root in roots)


def confine(raw: str, roots: Sequence[Path]) -> Path:
    """The real path of ``raw`` if it lies inside ``roots``; :class:`InvalidInput` saying why.

    The messages never name a root: the roots are the operator's (and other tenants') business.
    """
    if not roots:
        raise InvalidInput(
            "this server accepts no server paths from you (no folders are allowed for your "
            "key); upload the files to POST /api/v1/batches/{id}/files instead"
        )
    if "\x00" in raw:
        raise InvalidInput(f"path {raw!r} contains a NUL character")
    path = Path(raw)
    if not path.is_absolute():
        raise InvalidInput(f"path {raw!r} is not absolute; give full paths")
    real = Path(os.path.realpath(path))
    if not _inside(real, roots):
        raise InvalidInput(
            f"path {raw!r} is outside the allowed roots once symlinks and '..' are resolved"
        )
    if not real.exists():
        raise InvalidInput(f"path {raw!r} does not exist")
    return real


MAX_SKIPPED_REPORTED = 100


class SpooledSources:
    """Files found for a request, kept in a temporary file; iterable any number of times."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self.count = 0
        # Entries of a folder left out, with why (the first MAX_SKIPPED_REPORTED of them):
        # one bad entry does not refuse a whole folder, and the caller is told.
        self.skipped: list[tuple[str, str]] = []
        self.skipped_count = 0
        self.roots: list[str] = []  # each given path, resolved: sources are cited below it

    def skip(self, path: Path, reason: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < MAX_SKIPPED_REPORTED:
            self.skipped.append((str(path), reason))

    def add(self, path: Path, st: os.stat_result) -> None:
        try:
            text = str(path)
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"file name {str(path)!r} is not valid UTF-8") from None
        self._file.write(msgspec.json.encode((text, st.st_size, st.st_mtime_ns)) + b"\n")
        self.count += 1

    def __iter__(self) -> Iterator[SourceSpec]:
        self._file.seek(0)
        for line in self._file:
            source, size, mtime_ns = msgspec.json.decode(line)
            yield SourceSpec(source=source, size=size, mtime_ns=mtime_ns)

    def close(self) -> None:
        self._file.close()


def _matches(relative: str, name: str, glob: str | None) -> bool:
    if glob is None:
        return True
    return fnmatch.fnmatchcase(relative if "/" in glob else name, glob)


def expand(
    raw_paths: Sequence[str],
    roots: Sequence[Path],
    glob: str | None,
    patterns: PathPatterns | None = None,
) -> SpooledSources:
    """Resolve and confine every path, and walk folders into a :class:`SpooledSources`.

    Blocking: run it in a thread. Folders are walked recursively without following symlinked
    folders (no cycles); a symlinked file is taken at its real location when that lies inside
    the roots, and is otherwise left out and reported in ``skipped``. ``glob`` (fnmatch;
    matched against the name, or against the path relative to the given folder when it
    contains a '/') and ``patterns`` (include/exclude, gitignore-style, on the path relative
    to the given folder) filter files found in folders.
    """
    spooled = SpooledSources()
    try:
        for raw in raw_paths:
            real = confine(raw, roots)
            spooled.roots.append(str(real))
            if real.is_dir():
                _walk(real, roots, glob, patterns, spooled)
            else:
                st = os.stat(real)
                if not stat.S_ISREG(st.st_mode):
                    raise InvalidInput(f"path {raw!r} is neither a regular file nor a folder")
                spooled.add(real, st)
        if raw_paths and spooled.count == 0:
            hint = f" matching {glob!r}" if glob else ""
            hint += " selected by include/exclude" if patterns is not None else ""
            left_out = (
                f" ({spooled.skipped_count} left out, first: {spooled.skipped[0][0]}: "
                f"{spooled.skipped[0][1]})"
                if spooled.skipped
                else ""
            )
            raise InvalidInput(f"the given paths hold no files{hint}{left_out}")
    except BaseException:
        spooled.close()
        raise
    return spooled


def _walk(
    top: Path,
    roots: Sequence[Path],
    glob: str | None,
    patterns: PathPatterns | None,
    spooled: SpooledSources,
) -> None:
    def fail(error: OSError) -> None:
        raise InvalidInput(f"cannot read folder {error.filename!r}: {error.strerror}")

    for folder, dirs, files in os.walk(top, onerror=fail, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder, name)
            relative = path.relative_to(top).as_posix()
            if not _matches(relative, name, glob):
                continue
            if patterns is not None and not patterns.matches(relative):
                continue
            if path.is_symlink():
                real = Path(os.path.realpath(path))
                if not _inside(real, roots):
                    spooled.skip(path, "symlink to a place outside the allowed roots")
                    continue
                path = real
            try:
                st = os.stat(path)
            except OSError:
                continue  # vanished or dangling since the listing: nothing to process
            if stat.S_ISREG(st.st_mode):
                spooled.add(path, st)
