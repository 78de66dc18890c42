"""Server paths in create requests: confinement to the allowed roots, lazy expansion.

A path is accepted only when its real location (symlinks and ``..`` resolved) is inside one
of the configured roots. Folders are walked once, off the event loop, into a temporary file
of one JSON line per file; the ledger then reads that file lazily while inserting, so a
million-file folder never sits in memory as a list. An object URL (``s3://bucket/prefix``)
must lie inside one of the caller's object roots; its prefix is listed a page at a time into
the same file, each object with its size, last-modified time and ETag.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import msgspec

from ledger.errors import InvalidInput
from ledger.model import SourceSpec
from ledger.path_patterns import PathPatterns
from ledger.storage.urls import ObjectUrl, is_object_url, within_any


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

    def add_object(self, url: str, size: int, last_modified_ns: int, etag: str) -> None:
        """An object found under a listed prefix; its ETag is checked when it is read."""
        self._file.write(msgspec.json.encode((url, size, last_modified_ns, etag)) + b"\n")
        self.count += 1

    def __iter__(self) -> Iterator[SourceSpec]:
        self._file.seek(0)
        for line in self._file:
            source, size, mtime_ns, *etag = msgspec.json.decode(line)
            meta = {"etag": etag[0]} if etag else None
            yield SourceSpec(source=source, size=size, mtime_ns=mtime_ns, meta=meta)

    def close(self) -> None:
        self._file.close()


def _matches(relative: str, name: str, glob: str | None) -> bool:
    if glob is None:
        return True
    return fnmatch.fnmatchcase(relative if "/" in glob else name, glob)


def confine_object(raw: str, object_roots: Sequence[str]) -> ObjectUrl:
    """The object URL ``raw`` if it lies inside ``object_roots``; :class:`InvalidInput`
    saying why (never naming a root, like :func:`confine`)."""
    if not object_roots:
        raise InvalidInput(
            f"path {raw!r}: this server accepts no object URLs from you (no buckets are "
            "allowed for your key)"
        )
    url = ObjectUrl.parse(raw)
    if not within_any(url, object_roots):
        raise InvalidInput(f"path {raw!r} is outside the allowed roots")
    return url


def expand(
    raw_paths: Sequence[str],
    roots: Sequence[Path],
    glob: str | None,
    patterns: PathPatterns | None = None,
    *,
    object_roots: Sequence[str] = (),
    store: Callable[[], Any] | None = None,
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
            if is_object_url(raw):
                url = confine_object(raw, object_roots)
                spooled.roots.append(str(url))
                assert store is not None, "object URLs need the store's client"
                _list(url, store(), glob, patterns, spooled)
                continue
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


def _list(
    prefix: ObjectUrl,
    s3: Any,
    glob: str | None,
    patterns: PathPatterns | None,
    spooled: SpooledSources,
) -> None:
    from ledger.errors import ProcessingError
    from ledger.storage.objects import SOURCE_MISSING, iter_objects

    try:
        for info in iter_objects(s3, prefix):
            if info.url.key != prefix.key:  # an object named exactly is always taken
                relative = prefix.relative(info.url.key)
                if not _matches(relative, relative.rsplit("/", 1)[-1], glob):
                    continue
                if patterns is not None and not patterns.matches(relative):
                    continue
            spooled.add_object(str(info.url), info.size, info.last_modified_ns, info.etag)
    except ProcessingError as exc:
        if exc.code == SOURCE_MISSING:
            raise InvalidInput(f"path {str(prefix)!r} does not exist") from exc
        raise


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
