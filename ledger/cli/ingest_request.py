"""What ``ledger ingest`` was asked to do, validated: the request the run and the plan share."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.cli.app import EXIT_USAGE, CliError
from ledger.path_patterns import PathPatterns
from ledger.records import BatchSpec

if TYPE_CHECKING:
    from ledger.core.ledger import Ledger

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

    def spec(self) -> BatchSpec:
        more = len(self.roots) - 1
        name = str(self.roots[0]) + (f" (+{more} more)" if more else "")
        return BatchSpec(
            id=self.batch_id,
            name=name[:500],
            processor=self.processor,
            options=self.options,
            priority=self.priority,
            max_attempts=self.max_attempts,
            roots=tuple(str(root) for root in self.roots),
        )

    def display(self, source: str, meta: Any = None) -> str:
        """A source as people want to read it: relative to the folder it was found in (a
        member of an archive or email, with ``meta``: its parent's name, ``!/``, its path)."""
        from ledger.core.citations import source_name  # not at the top: the core stays lazy

        return source_name(source, meta, [str(root) for root in self.roots])


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
