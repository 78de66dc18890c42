"""Control of batches as a service: pause, resume, cancel, retry, edit, retire what is
gone from a synced folder, and delete. Each method is one transaction on the runner (a
deletion and a retirement are several bounded ones)."""

from __future__ import annotations

from collections.abc import Sequence

from ledger.db.runner import Runner
from ledger.model import Batch
from ledger.queue import control, deletion, retire
from ledger.queue.batch_edits import BatchChanges, update_batch


class Control:
    """What an operator or tenant does to a batch (tenant-scoped by ``owner``)."""

    def __init__(self, db: Runner) -> None:
        self._db = db

    async def pause(
        self, batch_id: str, *, owner: str | None = None, reason: str | None = None
    ) -> Batch:
        return await self._db.run(
            lambda conn, now: control.pause(conn, batch_id, owner=owner, reason=reason, now=now)
        )

    async def resume(self, batch_id: str, *, owner: str | None = None) -> Batch:
        return await self._db.run(
            lambda conn, now: control.resume(conn, batch_id, owner=owner, now=now)
        )

    async def cancel(self, batch_id: str, *, owner: str | None = None) -> Batch:
        return await self._db.run(
            lambda conn, now: control.cancel(conn, batch_id, owner=owner, now=now)
        )

    async def retry_failed(
        self, batch_id: str, *, owner: str | None = None, code: str | None = None
    ) -> int:
        return await self._db.run(
            lambda conn, now: control.retry_failed(conn, batch_id, owner=owner, code=code, now=now)
        )

    async def update_batch(
        self, batch_id: str, changes: BatchChanges, *, owner: str | None = None
    ) -> Batch:
        """Change a batch's name, priority or max_attempts (see queue/batch_edits.py)."""
        return await self._db.run(
            lambda conn, now: update_batch(conn, batch_id, changes, owner=owner, now=now)
        )

    async def delete_batch(
        self,
        batch_id: str,
        *,
        owner: str | None = None,
        force: bool = False,
        on_step: deletion.Progress | None = None,
    ) -> deletion.DeletionReport:
        """Delete the batch, its rows and stored files in bounded steps (resumable)."""
        return await deletion.delete_batch(
            self._db,
            batch_id,
            owner=owner,
            force=force,
            step_rows=self._db.settings.delete_step_rows,
            on_step=on_step,
        )

    async def unfinished_deletions(self, *, owner: str | None = None) -> list[str]:
        """Batches whose deletion started and was interrupted (finish with delete_batch)."""
        return await self._db.read(lambda conn, now: deletion.unfinished(conn, owner=owner))

    async def retire_gone(
        self,
        batch_id: str,
        still_there: retire.StillThere,
        *,
        paths: Sequence[str] | None = None,
    ) -> retire.RetireReport:
        """Retire the batch's documents whose source is gone (see queue/retire.py)."""
        return await retire.retire_gone(self._db, batch_id, still_there, paths=paths)

    async def running_among(self, batch_id: str, sources: Sequence[str]) -> list[str]:
        """Which of ``sources`` have a running document in ``batch_id``."""
        return await retire.running_among(self._db, batch_id, sources)
