"""The file side of resumable uploads: one data file per upload, appended under a lock.

The ledger row says how many bytes are durable; this module keeps the file in step with it.
A file is opened with an exclusive ``flock`` (released by the kernel if the process dies), so
two processes on one machine can never append to the same file, even if one of them stalled
past its database lease. Before writing, the file is cut back to the durable offset: bytes
written after the last commit (a crash, a failed checksum) are never counted twice.

Blocking calls run in threads: the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ledger.app import Ledger
from ledger.maintenance.uploads import remove_ended

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the database lease alone guards writers
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

READ_BLOCK = 1024 * 1024


def _try_lock(fd: int) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


# Whether files can be locked here. Where they can, a writer keeps its upload file locked for
# as long as it holds the upload's lease in the database, so holding the lock proves that no
# live writer exists, and a dead writer's lease may be taken over at once (no wait for its
# expiry after a crash).
FILE_LOCKS = fcntl is not None


class UploadFile:
    """One upload's data file, open and exclusively locked by this request."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    async def open(cls, path: Path, *, wait: float, create: bool = True) -> UploadFile | None:
        """Open (creating it if ``create``) and lock the file; None if another holder keeps
        the lock for ``wait`` seconds, or if it does not exist and ``create`` is false."""

        def opener() -> int | None:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_RDWR | (os.O_CREAT if create else 0) | getattr(os, "O_CLOEXEC", 0)
            try:
                return os.open(path, flags, 0o644)
            except FileNotFoundError:
                return None

        fd = await asyncio.to_thread(opener)
        if fd is None:
            return None
        deadline = time.monotonic() + wait
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            await asyncio.sleep(0.02)
        return cls(path, fd)

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise ValueError("upload file is closed")
        return self._fd

    async def size(self) -> int:
        return (await asyncio.to_thread(os.fstat, self.fd)).st_size

    async def truncate(self, size: int) -> None:
        await asyncio.to_thread(os.ftruncate, self.fd, size)

    async def write_at(self, data: bytes, position: int, hasher: Any = None) -> None:
        """Write all of ``data`` at ``position`` (and feed it to ``hasher``), in a thread."""

        def write() -> None:
            if hasher is not None:
                hasher.update(data)
            view = memoryview(data)
            at = position
            while view:
                written = os.pwrite(self.fd, view, at)
                view = view[written:]
                at += written

        await asyncio.to_thread(write)

    async def sync(self) -> None:
        await asyncio.to_thread(os.fsync, self.fd)

    async def mtime_ns(self) -> int:
        return (await asyncio.to_thread(os.fstat, self.fd)).st_mtime_ns

    def close(self) -> None:
        """Close the file, which releases the lock."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


async def cut_back(path: Path, offset: int, durable: Callable[[], Awaitable[int]]) -> bool:
    """Cut a file longer than the counted ``offset`` back (bytes a crash left after the last
    count) when nobody is writing it; True if it was cut. For status requests (HEAD).

    Under the file's lock the count is read again with ``durable``: a writer may have
    counted more bytes since ``offset`` was read, and writers count only while they hold
    the lock. Where files cannot be locked this is left to the next writer.
    """
    if not FILE_LOCKS:
        return False
    try:
        size = (await asyncio.to_thread(os.stat, path)).st_size
    except FileNotFoundError:
        return False
    if size <= offset:
        return False
    file = await UploadFile.open(path, wait=0, create=False)
    if file is None:
        return False
    try:
        counted = await durable()
        if size <= counted:
            return False
        await file.truncate(counted)
    finally:
        file.close()
    return True


async def sha256_of(path: Path) -> str:
    """SHA-256 of a whole file, read in a thread.

    An upload's hash is taken this way once, when its last byte is in: ``hashlib`` state
    cannot be saved, and an upload may be spread over many requests, processes and restarts.
    One more read of the file is the price of a hash that is always right.
    """

    def digest() -> str:
        h = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(READ_BLOCK):
                h.update(block)
        return h.hexdigest()

    return await asyncio.to_thread(digest)


async def abandon(ledger: Ledger, upload_id: str, owner: str | None) -> None:
    """End an upload refused during its creation request and remove its file. The refusal
    is what the client must hear: a failure here is logged (the cleanup ends the upload at
    its expiry) and not raised in its place."""
    try:
        await ledger.uploads.terminate(upload_id, owner=owner)
        await remove_ended(ledger, upload_id=upload_id)
    except Exception:
        log.warning("upload %s: could not end it after its 413", upload_id, exc_info=True)
