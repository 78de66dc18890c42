"""Finding the objects to ingest under ``s3://bucket/prefix`` arguments, lazily.

The listing is read a page (1,000 keys) at a time and yielded one :class:`SourceSpec` at a
time, so a prefix of millions of objects costs the memory of one page. Objects are selected
the way files are: ``--glob``, ``--include`` and ``--exclude`` match the key relative to the
prefix, and keys with a segment starting with a dot are left out unless ``--hidden``. Each
source carries the object's size, last-modified time (as ``mtime_ns``) and ETag, which the
worker checks when it reads the object.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from ledger.cli.walk import WalkStats, matches_pattern
from ledger.path_patterns import PathPatterns
from ledger.storage.urls import ObjectUrl

if TYPE_CHECKING:
    from ledger.model import SourceSpec
    from ledger.settings import Settings


def parse_prefixes(raw: Sequence[str]) -> list[ObjectUrl]:
    """The object URLs among the arguments, parsed (``InvalidInput`` says what is wrong),
    duplicates dropped, order kept."""
    urls: list[ObjectUrl] = []
    for value in raw:
        url = ObjectUrl.parse(value)
        if url not in urls:
            urls.append(url)
    return urls


def list_objects(
    settings: Settings,
    prefixes: Sequence[ObjectUrl],
    *,
    pattern: str | None = None,
    hidden: bool = False,
    stats: WalkStats | None = None,
    patterns: PathPatterns | None = None,
) -> Iterator[SourceSpec]:
    """Yield every selected object under ``prefixes`` (a prefix may name one object, which
    is then always taken). Errors of the store are raised as the ledger's errors."""
    from ledger.model import SourceSpec  # loads msgspec: not at --help
    from ledger.storage import objects

    stats = stats if stats is not None else WalkStats()
    s3 = objects.client_for(settings)
    for prefix in prefixes:
        for info in objects.iter_objects(s3, prefix):
            if info.url.key != prefix.key:
                relative = prefix.relative(info.url.key)
                if not hidden and any(part.startswith(".") for part in relative.split("/")):
                    continue
                if not matches_pattern(relative, pattern) or (
                    patterns is not None and not patterns.matches(relative)
                ):
                    stats.note_unmatched(relative)
                    continue
            stats.files += 1
            yield SourceSpec(
                source=str(info.url),
                size=info.size,
                mtime_ns=info.last_modified_ns,
                meta={"etag": info.etag},
            )
