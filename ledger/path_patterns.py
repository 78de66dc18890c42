"""Include and exclude patterns: which files below a folder a batch takes.

Patterns are gitignore-style (the ``pathspec`` library), matched on the path relative to
the folder given: ``*.pdf`` and ``**/*.pdf`` match at any depth, the top folder included;
``docs/`` matches everything below a folder named ``docs``; ``/build`` only at the top. A
file is taken when it matches an include pattern (or none are given) and no exclude
pattern: excludes win. The CLI's ``--include``/``--exclude`` and the API's
``include``/``exclude`` share this one definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.errors import InvalidInput

MAX_PATTERNS = 100  # per list: a selection, not a file list
MAX_PATTERN_LENGTH = 500


@dataclass(frozen=True)
class PathPatterns:
    """Compiled include and exclude patterns (see the module docstring)."""

    include: tuple[str, ...]
    exclude: tuple[str, ...]
    _include: Any
    _exclude: Any

    def matches(self, relative: str) -> bool:
        """True when the file at ``relative`` (``/``-separated, below the folder given) is
        taken."""
        if self._include is not None and not self._include.match_file(relative):
            return False
        return self._exclude is None or not self._exclude.match_file(relative)


def compile_patterns(include: Sequence[str], exclude: Sequence[str]) -> PathPatterns | None:
    """The compiled patterns, or None when neither list has any. Raises ``InvalidInput``
    naming the first pattern that is empty, too long or not a valid gitignore pattern."""
    if not include and not exclude:
        return None
    return PathPatterns(
        include=tuple(include),
        exclude=tuple(exclude),
        _include=_spec("include", include) if include else None,
        _exclude=_spec("exclude", exclude) if exclude else None,
    )


def _spec(kind: str, patterns: Sequence[str]) -> Any:
    import pathspec  # imported when patterns are given: most runs have none

    if len(patterns) > MAX_PATTERNS:
        raise InvalidInput(f"at most {MAX_PATTERNS} {kind} patterns, not {len(patterns)}")
    for pattern in patterns:
        if not pattern.strip() or len(pattern) > MAX_PATTERN_LENGTH or "\n" in pattern:
            raise InvalidInput(f"invalid {kind} pattern {pattern!r}")
    try:
        return pathspec.PathSpec.from_lines("gitwildmatch", patterns)
    except ValueError as exc:
        raise InvalidInput(f"invalid {kind} pattern: {exc}") from exc
