"""Documents that hold documents: zip and tar archives, and emails with attachments.

A container is recognised by its name (an upload's original file name, or its path):
``.zip``; ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``/``.tbz2``, ``.tar.xz``/``.txz``;
``.eml``. A plain ``.gz`` of one file stays an excluded type. Its members are written to
files by :class:`MemberSink` and become child documents of the same batch in the
transaction that marks the container done (:mod:`ledger.queue.children`).

Member files go to ``<storage>/members/<parent id>/<lease token>/<index><extension>``: a
folder of the attempt's own (:mod:`ledger.storage.member_attempts`), so an attempt that lost
its lease never writes or removes the files the new owner's children name. Each is written
under a temporary name and renamed into place, so a child never reads half a file.

A member is refused (reported in the parent's result, the rest goes on) when its name is
absolute, has a ``..`` component, control characters or bytes that are not text, when it is
a link or a device (tar), encrypted (zip), inflates more than ``max_archive_ratio`` times
(zip), or is a container nested ``max_archive_depth`` deep. A member that is not a document
by the selection rules (an image, a script...) is skipped as ``excluded_type``, as in a
folder walk. An archive over the whole-container caps (``max_archive_members``,
``max_archive_inflated_bytes``, the tar stream's ratio) is a bomb: the parent fails with
``archive_too_large`` and no child is created.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ledger.errors import PermanentError, RetryableError
from ledger.model import JSON, ChildFile
from ledger.processors.ingest.options import IngestErrorCode, IngestOptions
from ledger.processors.ingest.selection import excluded_by_name, excluded_reason

RATIO_CHECK_FROM = 1 << 20  # members (and tar streams) smaller than this may compress freely
REPORTED_SKIPS = 100  # skipped members named in the parent's result; the rest are counted

_TAR_ENDINGS = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz")


class ContainerKind(StrEnum):
    ZIP = "zip"
    TAR = "tar"
    EMAIL = "email"


def container_kind(name: str) -> ContainerKind | None:
    """The kind of container a file called ``name`` is, or None for any other file."""
    base = os.path.basename(name.replace("\\", "/")).lower()
    if base.endswith(".zip"):
        return ContainerKind.ZIP
    if base.endswith(_TAR_ENDINGS):
        return ContainerKind.TAR
    if base.endswith(".eml"):
        return ContainerKind.EMAIL
    return None


def member_path_of(name: str) -> tuple[str | None, str | None]:
    """``(path, None)``: the member's clean path (``a/./b`` is ``a/b``); ``(None, why)``:
    the name is refused."""
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return None, "name with control characters"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return None, "name that is not valid text"
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        return None, "absolute path"
    parts = normalised.split("/")
    if ".." in parts:
        return None, "'..' in its path"
    clean = "/".join(p for p in parts if p not in ("", "."))
    if not clean:
        return None, "empty name"
    return clean, None


def too_large(message: str) -> PermanentError:
    """The whole container is over a cap: it fails and no child is created."""
    return PermanentError(IngestErrorCode.ARCHIVE_TOO_LARGE, message)


@dataclass(frozen=True)
class ParentRef:
    """What a child needs to know of its parent to be cited and bounded."""

    id: int
    source: str
    meta: Any
    depth: int  # 0 for a top-level document


@dataclass
class Expansion:
    """What expanding a container produced (picklable: it comes back from the pool)."""

    kind: str
    sha256: str
    size: int
    members: list[ChildFile] = field(default_factory=list)
    skipped: list[JSON] = field(default_factory=list)  # the first REPORTED_SKIPS
    skipped_count: int = 0
    inflated: int = 0
    body_path: str | None = None  # an email's body, extracted to a file of its own
    # The attempt folders the parent's current children name: the finish that makes these
    # members its children replaces those, so it removes them (member_attempts).
    replaced: list[str] = field(default_factory=list)

    def summary(self) -> JSON:
        """The parent's result fields that describe its members."""
        return {
            "members": len(self.members),
            "skipped_members": self.skipped_count,
            "skipped": self.skipped,
            "inflated_bytes": self.inflated,
        }


def _extension(member_path: str) -> str:
    """The member's extension, kept on its file so detection by name works; only a short,
    plain one (the name itself is the parent's to choose, the file name is ours)."""
    ext = os.path.splitext(member_path)[1].lower()
    return ext if 1 < len(ext) <= 10 and ext[1:].isalnum() and ext.isascii() else ""


class MemberSink:
    """Writes a container's members to their files and keeps the count and the caps."""

    def __init__(
        self, out_dir: str, parent: ParentRef, options: IngestOptions, expansion: Expansion
    ) -> None:
        self.out_dir = out_dir
        self.parent = parent
        self.options = options
        self.expansion = expansion
        self.seen = 0  # members looked at (directories not counted)
        self.written: list[str] = []

    def skip(self, member: str, reason: str) -> None:
        self.expansion.skipped_count += 1
        if len(self.expansion.skipped) < REPORTED_SKIPS:
            self.expansion.skipped.append({"member": member, "reason": reason})

    def admit(self, name: str) -> str | None:
        """The member's clean path when it is to be extracted; None when it is refused or
        skipped (recorded). Raises ``archive_too_large`` past ``max_archive_members``."""
        self.seen += 1
        if self.seen > self.options.max_archive_members:
            raise too_large(f"the archive has more than {self.options.max_archive_members} members")
        path, why = member_path_of(name)
        if path is None:
            self.skip(name.encode("utf-8", "backslashreplace").decode(), f"refused: {why}")
            return None
        if container_kind(path) is not None:
            if self.parent.depth + 1 >= self.options.max_archive_depth:
                self.skip(path, f"refused: nested more than {self.options.max_archive_depth} deep")
                return None
            return path
        what = excluded_by_name(path)
        if what is not None:
            self.skip(path, excluded_reason(what))
            return None
        return path

    def count_inflated(self, size: int) -> None:
        """Add ``size`` bytes to the container's total; raises past the cap."""
        self.expansion.inflated += size
        cap = self.options.max_archive_inflated_bytes
        if self.expansion.inflated > cap:
            raise too_large(f"the archive inflates to more than {cap} bytes")

    def write(self, member_path: str, blocks: Iterable[bytes]) -> None:
        """Write one member's bytes to its file and record it as a child."""
        index = len(self.expansion.members)
        target = os.path.join(self.out_dir, f"{index}{_extension(member_path)}")
        size, digest = self.write_file(target, blocks)
        self.expansion.members.append(
            ChildFile(
                member_path=member_path,
                source=target,
                size=size,
                sha256=digest,
                meta={
                    "member_of": {"source": self.parent.source, "meta": self.parent.meta},
                    "member_path": member_path,
                    "depth": self.parent.depth + 1,
                },
            )
        )

    def write_file(self, target: str, blocks: Iterable[bytes]) -> tuple[int, str]:
        """Write ``blocks`` to ``target`` (through a temporary name), counting them; its
        size and SHA-256."""
        os.makedirs(self.out_dir, exist_ok=True)
        partial = target + ".partial"
        digest = hashlib.sha256()
        size = 0
        self.written.append(target)
        try:
            with open(partial, "wb") as file:
                for block in blocks:
                    self.count_inflated(len(block))
                    digest.update(block)
                    size += len(block)
                    file.write(block)
            os.replace(partial, target)
        except OSError as exc:
            # A full or unwritable storage disk is the world's fault, not the document's.
            raise RetryableError(
                IngestErrorCode.SPOOL_FAILED,
                f"a member file could not be written: {exc}",
                systemic=True,
            ) from exc
        return size, digest.hexdigest()

    def finish(self) -> Expansion:
        """The expansion; anything else in the attempt's folder (a ``.partial`` file, or
        files of an earlier expansion into the same folder) is removed, so the folder holds
        exactly the files its children name."""
        keep = set(self.written)
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.out_dir):
                if entry.path not in keep:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
        return self.expansion

    def abandon(self) -> None:
        """Remove what this attempt wrote (the container failed), its folder, and the
        parent's folder if that left it empty."""
        remove_files([*self.written, *(p + ".partial" for p in self.written)], self.out_dir)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(self.out_dir))


def remove_files(paths: Iterable[str], folder: str) -> None:
    """Remove these files, then ``folder`` if that left it empty. Never raises."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)
    with contextlib.suppress(OSError):
        os.rmdir(folder)
