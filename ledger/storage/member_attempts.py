"""Members of an archive or email, one folder per attempt: an old owner removes only its own.

An attempt at a parent extracts its members to ``members/<parent id>/<lease token>/``, in the
local storage folder and, with ``LEDGER_STORAGE_URL`` set, under the same key prefix in the
object store. The lease token is new at every claim and never reused, so two attempts at the
same parent (one whose lease expired while it still extracted, and the one that took it
over) never write, overwrite or remove each other's members, and the children rows of the
finish that wins name only the winner's files.

An attempt folder is *unreferenced* when no child row names a file in it and its token is
not the parent's current lease: then no finish can ever adopt it (only the lease holder's
finish commits, and a token is never given again). Who removes what:

- an attempt whose finish did not make its children removes its own folder (its discard);
- the finish that made them removes the folders of the children it replaced;
- an attempt, before it extracts, removes the parent's unreferenced folders (what an attempt
  killed before its finish left, or a loser that could not clean up);
- deleting a batch removes its parents' whole member folders.

:func:`listed` is called before the database is read for what to keep: a folder made after
the listing is not in it, and one listed is kept when, by the time of the read, it is the
lease holder's or a child names it.

Every call here blocks; async callers run it in a thread. Names come from the operator's
storage settings, the parent's id and what is listed under that parent, never from a caller.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ledger.errors import ProcessingError
from ledger.storage import member_objects, objects
from ledger.storage.local import members_dir
from ledger.storage.urls import ObjectUrl, is_object_url

if TYPE_CHECKING:
    from ledger.settings import Settings

log = logging.getLogger(__name__)


def attempt_dir(storage: Path | str, parent_id: int, token: str) -> str:
    """The local folder the attempt with lease ``token`` extracts the parent's members to."""
    return os.path.join(members_dir(storage, parent_id), token)


def entry_of(settings: Settings, parent_id: int, source: str) -> str | None:
    """The attempt folder (its name under the parent's member folder) that the local path
    or object ``source`` lies in; None when it lies elsewhere."""
    if is_object_url(source):
        if settings.storage_url is None:
            return None
        root = member_objects.members_root(settings.storage_url, parent_id).key
        key = ObjectUrl.parse(source).key
        inside = key[len(root) :] if key.startswith(root) else None
    else:
        root = os.path.normpath(os.path.abspath(members_dir(settings.storage, parent_id)))
        path = os.path.normpath(os.path.abspath(source))
        inside = path[len(root) + 1 :] if path.startswith(root + os.sep) else None
        inside = inside.replace(os.sep, "/") if inside is not None else None
    return inside.split("/", 1)[0] if inside else None


def listed(settings: Settings, parent_id: int) -> set[str]:
    """The names under the parent's member folder, locally and in the store (attempt
    folders; a file there is a member of the layout before attempt folders)."""
    names: set[str] = set()
    with contextlib.suppress(OSError):
        names.update(entry.name for entry in os.scandir(members_dir(settings.storage, parent_id)))
    if settings.storage_url is not None:
        root = member_objects.members_root(settings.storage_url, parent_id)
        s3 = objects.client_for(settings)
        try:
            for info in objects.iter_objects(s3, root):
                names.add(info.url.key[len(root.key) :].split("/", 1)[0])
        except ProcessingError as exc:
            log.warning("could not list the members of document %s: %s", parent_id, exc)
    return names


def remove(settings: Settings, parent_id: int, names: Iterable[str]) -> int:
    """Remove these entries of the parent's member folder, locally and in the store, and
    the folder once empty; how many files and objects went. Never raises: a leftover is
    found again by the next attempt or the batch's deletion."""
    folder = members_dir(settings.storage, parent_id)
    removed = 0
    chosen = [name for name in names if name and name not in (".", "..") and "/" not in name]
    for name in chosen:
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            with contextlib.suppress(OSError):
                removed += sum(1 for entry in os.scandir(path) if entry.is_file())
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed += 1
    with contextlib.suppress(OSError):
        os.rmdir(folder)
    if settings.storage_url is not None and chosen:
        root = member_objects.members_root(settings.storage_url, parent_id)
        s3 = objects.client_for(settings)
        for name in chosen:
            try:
                # A name without "/" is one object (the older layout) or an attempt's prefix.
                for info in objects.iter_objects(s3, root.child(root.key + name)):
                    objects.delete(s3, info.url)
                    removed += 1
            except ProcessingError as exc:
                log.warning("could not remove members %s of document %s: %s", name, parent_id, exc)
    return removed
