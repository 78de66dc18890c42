"""The progress bar of ``ledger ingest`` on a terminal, apart so that rich's progress
module loads only when a bar is shown."""

from __future__ import annotations

from collections.abc import Iterator

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
)
from rich.text import Text


class Bar(Progress):
    """Counts, rate and ETA on one line; the document in flight below it."""

    def __init__(self, console: Console) -> None:
        # Set first: rich renders once while constructing.
        self.current: RenderableType = Text("")
        super().__init__(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[eta]}"),
            console=console,
            refresh_per_second=8,
        )

    def get_renderables(self) -> Iterator[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        yield self.current
