"""Where documents' bytes live: the local storage folder and S3-compatible object stores.

:mod:`ledger.storage.local` is the upload folder (``LEDGER_STORAGE_DIR``) shared by the API
server and every worker; :mod:`ledger.storage.urls` names objects (``s3://bucket/key``)
without I/O; :mod:`ledger.storage.objects` talks to an S3-compatible store (the ``s3``
extra). The local folder's functions are re-exported here, where callers always found them.
"""

from __future__ import annotations

from ledger.storage.local import (
    MARKER,
    MEMBERS_FOLDER,
    check_readable,
    check_readable_async,
    is_stored,
    members_dir,
    prepare,
)

__all__ = [
    "MARKER",
    "MEMBERS_FOLDER",
    "check_readable",
    "check_readable_async",
    "is_stored",
    "members_dir",
    "prepare",
]
