"""What ``ledger ingest`` was asked to do, validated: the request the run and the plan share."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.cli.app import EXIT_USAGE, CliError
from ledger.cli.selection import Selection
from ledger.cli.walk import WalkStats, walk
from ledger.path_patterns import PathPatterns
from ledger.storage.urls import ObjectUrl

if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.model import BatchSpec, SourceSpec
    from ledger.settings import Settings

OPTION_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Request:
    """What the user asked ``ledger ingest`` to do, validated."""

    roots: list[Path]
    batch_id: str
    pattern: str | None
    hidden: bool
    processor: str
    options: dict[str, Any]
    priority: int
    max_attempts: int | None
    concurrency: int
    dry_run: bool
    json_output: bool
    progress_interval: float
    follow_symlinks: bool = False
    patterns: PathPatterns | None = None  # --include / --exclude
    object_roots: list[ObjectUrl] = field(default_factory=list)  # s3:// prefixes

    @property
    def where(self) -> list[str]:
        """Every folder, file and object prefix asked for, as given (resolved)."""
        return [str(root) for root in self.roots] + [str(url) for url in self.object_roots]

    def sources(self, settings: Settings, stats: WalkStats) -> Iterator[SourceSpec]:
        """The files under the roots, then the objects under the prefixes, lazily."""
        found: Iterator[SourceSpec] = walk(
            self.roots,
            pattern=self.pattern,
            hidden=self.hidden,
            follow_symlinks=self.follow_symlinks,
            stats=stats,
            patterns=self.patterns,
        )
        if self.object_roots:
            from ledger.cli.walk_objects import list_objects

            listed = list_objects(
                settings,
                self.object_roots,
                pattern=self.pattern,
                hidden=self.hidden,
                stats=stats,
                patterns=self.patterns,
            )
            found = itertools.chain(found, listed)
        return found

    sync: bool = False  # also retire documents whose file is gone (--sync, --watch)
    watch: bool = False
    debounce: float = 1.0  # --watch: seconds a changed file must stay still

    def selection(self) -> Selection:
        """The walk's rules, to ask of one path at a time."""
        return Selection(
            roots=self.roots,
            pattern=self.pattern,
            hidden=self.hidden,
            follow_symlinks=self.follow_symlinks,
            patterns=self.patterns,
        )

    def spec(self) -> BatchSpec:
        from ledger.model import BatchSpec  # loads msgspec: not at --help

        where = self.where
        more = len(where) - 1
        name = where[0] + (f" (+{more} more)" if more else "")
        return BatchSpec(
            id=self.batch_id,
            name=name[:500],
            processor=self.processor,
            options=self.options,
            priority=self.priority,
            max_attempts=self.max_attempts,
            roots=tuple(where),
        )

    def display(self, source: str, meta: Any = None) -> str:
        """A source as people want to read it: relative to the folder it was found in (a
        member of an archive or email, with ``meta``: its parent's name, ``!/``, its path)."""
        from ledger.index.citations import source_name  # not at the top: the core stays lazy

        return source_name(source, meta, self.where)


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs into processor options; a VALUE that parses as JSON is JSON."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not OPTION_KEY.match(key):
            raise CliError(f"--option expects KEY=VALUE, got {pair!r}", EXIT_USAGE)
        try:
            parsed[key] = json.loads(value)
        except ValueError:
            parsed[key] = value
    return parsed


def profiles_of(ledger: Ledger) -> Any:
    """The operator's embedder profiles (imported here: embedders load numpy)."""
    from ledger.embedders.profiles import profiles_for

    return profiles_for(ledger.settings)
