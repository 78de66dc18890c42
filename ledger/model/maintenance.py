"""What one maintenance pass did, as the leader records it and operators read it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from msgspec import Struct


class MaintenanceRun(Struct, frozen=True, kw_only=True):
    """One maintenance pass: who ran it, when, and what each step did (rows or files).
    ``finished_at`` is None while it runs (or when its process died mid-run)."""

    id: int
    runner: str
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]
    error: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "runner": self.runner,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "counts": dict(self.counts),
            "error": self.error,
        }
