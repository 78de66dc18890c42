"""The local storage folder for uploaded files, shared by the API server and every worker.

Uploaded files are stored under ``LEDGER_STORAGE_DIR`` and their documents name them by
that absolute path, so every worker must see the same folder at the same path (a shared
mount, for example NFS). The folder carries a marker file, written when the API server
starts, so a worker can tell "this file is gone" (the folder is there, the file is not:
the processor reports ``source_missing``) from "the storage is not mounted on this machine"
(``storage_unreachable``: retryable and systemic, so the circuit breaker pauses the batch
instead of failing every document on a misconfigured worker).
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
from pathlib import Path

from ledger.errors import RetryableError
from ledger.states import ErrorCode

MARKER = ".ledger-storage"
# Members extracted from an archive or email document: ``members/<document id>/`` (see
# ledger.processors.ingest.containers). Whatever is there goes with its document.
MEMBERS_FOLDER = "members"
_MARKER_TEXT = (
    "This folder holds files uploaded to the ledger. Every API server and worker must see it\n"
    "at this same path (LEDGER_STORAGE_DIR). Do not delete this file: workers use it to tell\n"
    "a missing file from a storage folder that is not mounted.\n"
)


def prepare(storage: Path) -> None:
    """Create the storage folder and its marker (idempotent; the API server calls it)."""
    storage.mkdir(parents=True, exist_ok=True)
    marker = storage / MARKER
    if not marker.exists():
        marker.write_text(_MARKER_TEXT, encoding="utf-8")


def is_stored(source: str, storage: Path) -> bool:
    """Whether ``source`` names a file inside the storage folder (by path, without I/O)."""
    root, prefix = _absolute_root(storage) or _root(os.path.abspath(storage))
    path = os.path.abspath(source)  # normalized too
    return path == root or path.startswith(prefix)


@functools.lru_cache(maxsize=16)
def _absolute_root(storage: Path) -> tuple[str, str] | None:
    # Asked once per document: normalizing the same folder each time was measurable. A
    # relative folder (None here) is resolved at each call, against the current directory,
    # as the source is.
    return _root(os.path.normpath(storage)) if storage.is_absolute() else None


def _root(root: str) -> tuple[str, str]:
    return root, root.rstrip(os.sep) + os.sep


def check_readable(source: str, storage: Path) -> None:
    """Raise ``storage_unreachable`` if ``source`` is a stored file this machine cannot read
    because the storage folder is missing, not mounted, or not readable here."""
    if not is_stored(source, storage):
        return
    try:
        with open(source, "rb"):
            return
    except FileNotFoundError as exc:
        if (storage / MARKER).is_file():
            return  # the storage is here; the file itself is gone: the processor says so
        cause: OSError = exc
    except OSError as exc:
        cause = exc
    raise RetryableError(
        ErrorCode.STORAGE_UNREACHABLE.value,
        f"stored file {source} cannot be read on {socket.gethostname()}: the storage folder "
        f"{storage} is not mounted or not readable here ({type(cause).__name__}: "
        f"{cause.strerror or cause}); mount the shared folder at this path on every worker "
        "(LEDGER_STORAGE_DIR)",
        systemic=True,
    ) from cause


async def check_readable_async(source: str, storage: Path) -> None:
    """:func:`check_readable` off the event loop (a hung network mount must not block it)."""
    if is_stored(source, storage):
        await asyncio.to_thread(check_readable, source, storage)


def members_dir(storage: Path | str, document_id: int) -> str:
    """The folder the members of document ``document_id`` are extracted to."""
    return os.path.join(storage, MEMBERS_FOLDER, str(document_id))
