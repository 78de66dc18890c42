"""Object URLs (``s3://bucket/key``): parsing and containment, without I/O.

A document whose source is an object URL is read from the object store; everything else is
a local path. An object root (``s3://bucket/prefix/``) contains the objects whose key starts
with its prefix at a ``/`` boundary, the way a folder contains its files: the root
``s3://b/docs`` holds ``s3://b/docs/a.pdf`` but not ``s3://b/docs-old/a.pdf``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ledger.errors import InvalidInput

SCHEME = "s3://"
# S3's own rules for bucket names (3-63 characters, lower case, digits, dots, hyphens).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def is_object_url(source: str) -> bool:
    """Whether ``source`` names an object (``s3://...``) rather than a local path."""
    return source[:5].lower() == SCHEME


@dataclass(frozen=True)
class ObjectUrl:
    """One bucket and a key (or a key prefix, for a root or a listing)."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, raw: str) -> ObjectUrl:
        """The bucket and key of ``raw``; :class:`InvalidInput` saying what is wrong.

        Keys with ``.`` or ``..`` segments are refused: S3 keeps them literally, but some
        S3-compatible servers resolve them, which would let a key step out of its prefix.
        """
        if not is_object_url(raw):
            raise InvalidInput(f"{raw!r} is not an s3:// URL")
        if "\x00" in raw:
            raise InvalidInput(f"{raw!r} contains a NUL character")
        bucket, _, key = raw[len(SCHEME) :].partition("/")
        if not _BUCKET.fullmatch(bucket):
            raise InvalidInput(f"{raw!r} does not name a valid bucket")
        if any(part in (".", "..") for part in key.split("/")):
            raise InvalidInput(f"{raw!r} has a '.' or '..' segment in its key")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"

    @property
    def prefix(self) -> str:
        """The key as a folder-like prefix: empty (the whole bucket) or ending with ``/``."""
        return self.key if not self.key or self.key.endswith("/") else self.key + "/"

    def child(self, key: str) -> ObjectUrl:
        """The object ``key`` of the same bucket."""
        return ObjectUrl(self.bucket, key)

    def relative(self, key: str) -> str:
        """``key`` relative to this prefix (what include/exclude patterns are matched to)."""
        prefix = self.prefix
        return key[len(prefix) :] if key.startswith(prefix) else key

    def within(self, root: ObjectUrl) -> bool:
        """Whether this object or prefix lies inside ``root`` (same bucket, key below it)."""
        if self.bucket != root.bucket:
            return False
        return not root.key or self.key == root.key.rstrip("/") or self.key.startswith(root.prefix)


def within_any(url: ObjectUrl, roots: Iterable[str]) -> bool:
    """Whether ``url`` lies inside one of the object ``roots`` (URLs the operator set)."""
    return any(url.within(ObjectUrl.parse(root)) for root in roots)
