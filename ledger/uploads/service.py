"""Resumable uploads (tus, multipart) as a service: one row per upload, see
uploads/state.py. Every method is one transaction; the writer's token fences the ones
that move bytes. The bytes themselves live in ``ledger.storage``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.runner import Runner
from ledger.model import Upload, UploadSpec
from ledger.uploads import state


class Uploads:
    """Upload rows: created, held by one writer at a time, completed into a document."""

    def __init__(self, db: Runner) -> None:
        self._db = db

    async def create(
        self,
        spec: UploadSpec,
        *,
        folder: Path,
        writer_token: str | None = None,
    ) -> Upload:
        """A new upload whose bytes will go to a file in ``folder``; held by
        ``writer_token`` when given (creation with the first bytes)."""
        settings = self._db.settings

        async def work(conn: AsyncConnection, now: datetime) -> Upload:
            return await state.create(
                conn,
                spec,
                folder=folder,
                now=now,
                expiry_seconds=settings.tus_expiry_seconds,
                writer_token=writer_token,
                lease_seconds=settings.tus_lease_seconds,
                quota_bytes=settings.tenant_upload_quota_bytes,
                max_upload_bytes=settings.tus_max_bytes,
                default_max_attempts=settings.max_attempts,
            )

        try:
            return await self._db.run(work)
        except IntegrityError:
            # Another transaction created the batch meanwhile: run again to find whose it is.
            return await self._db.run(work)

    async def get(self, upload_id: str, *, owner: str | None = None) -> Upload:
        """The upload (NotFound when missing, another tenant's or terminated; Gone when
        expired)."""
        return await self._db.read(
            lambda conn, now: state.get(conn, upload_id, owner=owner, now=now)
        )

    async def acquire(
        self,
        upload_id: str,
        token: str,
        *,
        owner: str | None = None,
        length: int | None = None,
        take_over: bool = False,
    ) -> Upload:
        """Take the upload's writer lease (see :func:`ledger.uploads.state.acquire`)."""
        lease_seconds = self._db.settings.tus_lease_seconds
        return await self._db.run(
            lambda conn, now: state.acquire(
                conn, upload_id, owner=owner, token=token, now=now, lease_seconds=lease_seconds,
                length=length, take_over=take_over,
            )
        )  # fmt: skip

    async def renew(self, upload_id: str, token: str, *, offset: int | None = None) -> Upload:
        """Extend the writer's lease, recording ``offset`` durable bytes when given;
        LeaseLost when the token no longer holds the upload."""
        settings = self._db.settings
        expiry = settings.tus_expiry_seconds if offset is not None else None
        return await self._db.run(
            lambda conn, now: state.renew(
                conn, upload_id, token=token, now=now, lease_seconds=settings.tus_lease_seconds,
                offset=offset, expiry_seconds=expiry,
            )
        )  # fmt: skip

    async def commit(self, upload_id: str, token: str, *, offset: int) -> Upload:
        """Record ``offset`` durable bytes and give the lease up (fenced by ``token``)."""
        expiry = self._db.settings.tus_expiry_seconds
        return await self._db.run(
            lambda conn, now: state.commit(
                conn, upload_id, token=token, offset=offset, now=now, expiry_seconds=expiry
            )
        )

    async def release(self, upload_id: str, token: str) -> None:
        """Give the writer lease up, changing nothing else."""
        await self._db.run(lambda conn, now: state.release(conn, upload_id, token=token, now=now))

    async def complete(
        self,
        upload_id: str,
        token: str,
        *,
        sha256: str,
        size: int,
        mtime_ns: int | None,
        stored_as: tuple[str, str] | None = None,
    ) -> Upload:
        """Count the last bytes, mark the upload complete and create its document (and its
        batch if needed) in one transaction; exactly once, fenced by ``token``. With
        ``stored_as`` (object URL, ETag) the document names that object."""
        max_attempts = self._db.settings.max_attempts
        return await self._db.run(
            lambda conn, now: state.complete(
                conn, upload_id, token=token, sha256=sha256, size=size, mtime_ns=mtime_ns,
                now=now, default_max_attempts=max_attempts, stored_as=stored_as,
            )
        )  # fmt: skip

    async def terminate(self, upload_id: str, *, owner: str | None = None) -> Upload:
        """End an unfinished upload (Conflict for a complete one)."""
        return await self._db.run(
            lambda conn, now: state.terminate(conn, upload_id, owner=owner, now=now)
        )

    async def expire(self, *, limit: int = 1000) -> int:
        """Mark unfinished uploads past their expiry expired (those nobody is writing)."""
        return await self._db.run(lambda conn, now: state.expire(conn, now=now, limit=limit))

    async def files_to_remove(
        self, *, limit: int = 500, upload_id: str | None = None
    ) -> list[tuple[str, str]]:
        """(id, path) of terminated or expired uploads whose file may now be removed."""
        return await self._db.read(
            lambda conn, now: state.files_to_remove(conn, now=now, limit=limit, upload_id=upload_id)
        )

    async def files_removed(self, ids: Sequence[str]) -> None:
        """Record that these ended uploads' files are gone."""
        await self._db.run(lambda conn, now: state.files_removed(conn, ids, now=now))
