"""What the walk behind ``ledger ingest`` left out, told to the person who ran it.

Entries are left out for a reason the user can act on: a name that is not UTF-8 (rename
it), a symbolic link leading outside the folder (``--follow-symlinks`` if that was meant),
an entry that could not be read. Each kind is one warning with a count and a few escaped
examples, and the same facts go into the JSON summary. A walk that found nothing at all is
a mistake in the command, not an empty batch.
"""

from __future__ import annotations

from typing import Any

from ledger.cli.app import err
from ledger.cli.ingest_request import Request
from ledger.cli.walk import WalkStats
from ledger.wording import plural


def skipped_json(stats: WalkStats) -> dict[str, Any]:
    """The skipped entries as fields of an ingest's JSON summary."""
    return {
        "unreadable": stats.unreadable,
        "skipped_unreadable_names": stats.unreadable_names,
        "unreadable_name_examples": stats.unreadable_name_examples,
        "skipped_outside_links": stats.outside_links,
        "outside_link_examples": stats.outside_link_examples,
    }


def report_skipped(stats: WalkStats) -> None:
    """One warning on stderr per kind of entry the walk left out."""
    if stats.unreadable:
        _warn(
            f"{plural(len(stats.unreadable), 'entry', 'entries')} could not be read and "
            f"{_were(len(stats.unreadable))} left out, "
            f"for example {stats.unreadable[0]}"
        )
    if stats.unreadable_names:
        _warn(
            f"{plural(stats.unreadable_names, 'file')} {_were(stats.unreadable_names)} left out "
            "because their names are not "
            f"valid UTF-8 (rename them to ingest them), for example "
            + ", ".join(stats.unreadable_name_examples)
        )
    if stats.outside_links:
        _warn(
            f"{plural(stats.outside_links, 'symbolic link')} {_were(stats.outside_links)} left out "
            "because they lead outside "
            "the folder being ingested (--follow-symlinks to take them), for example "
            + ", ".join(stats.outside_link_examples)
        )


def nothing_found(request: Request, stats: WalkStats) -> str:
    """Why a walk found no file to ingest, as one line."""
    where = ", ".join(request.where)
    what = "no regular files"
    if request.pattern:
        what += f" matching {request.pattern!r}"
    if request.patterns is not None:
        what += " selected by --include/--exclude"
    left_out = stats.unreadable_names + stats.outside_links + len(stats.unreadable)
    also = f" ({plural(left_out, 'entry', 'entries')} left out, see the warnings above)"
    also = also if left_out else ""
    return f"nothing to ingest: {what} in {where}{also}{_pattern_hint(stats)}"


def _pattern_hint(stats: WalkStats) -> str:
    """How the pattern was matched, with a path it saw, when it is what left everything out."""
    if not stats.unmatched:
        return ""
    return (
        f"; {plural(stats.unmatched, 'file')} did not match. The pattern is matched against "
        f"each file's path relative to the folder given, such as {stats.unmatched_example!r}; "
        "'*' also crosses folders and '**/' stands for any folders or none "
        "(--glob '*.pdf' takes PDFs at any depth)"
    )


def _warn(message: str) -> None:
    err.print(f"warning: {message}", style="yellow", markup=False)


def _were(count: int) -> str:
    return "was" if count == 1 else "were"
