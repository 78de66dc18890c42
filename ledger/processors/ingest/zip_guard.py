"""Zip bombs and unsafe members, refused from the zip's directory before anything inflates.

Every zip-based format ingest reads (DOCX, PPTX, XLSX, EPUB, ODT) passes here first. Their
libraries inflate whole parts into memory, so the directory is checked: the number of
members, the sum of their declared inflated sizes and the compression ratio of large
members are capped, and members named with ``..``, an absolute or drive path, a NUL, as
symbolic links, or encrypted are refused. The declared sizes are binding: Python's zipfile
never inflates a member beyond the size its directory declares (a member that would is a
CRC or size error, which the extractors report as ``corrupt``), so the caps also hold
while a library inflates. The caps are the ``max_docx_*`` options (named for the first
zip-based format; they apply to all of them).
"""

from __future__ import annotations

import stat
import zipfile
import zlib
from dataclasses import dataclass

from ledger.errors import PermanentError
from ledger.processors.ingest.options import IngestErrorCode, IngestOptions

RATIO_CHECK_FROM = 1 << 20  # members smaller than this may compress as well as they like
# What zipfile raises for a damaged zip: besides BadZipFile, a bad deflate stream is a
# zlib.error and an absurd "version needed" field a NotImplementedError.
ZIP_ERRORS = (
    zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, ValueError, EOFError,
    NotImplementedError,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ZipCaps:
    max_inflated_bytes: int  # sum of the declared sizes of all members
    max_ratio: int  # inflated / compressed, for members over RATIO_CHECK_FROM inflated
    max_entries: int

    @classmethod
    def of(cls, options: IngestOptions) -> ZipCaps:
        return cls(
            options.max_docx_inflated_bytes, options.max_docx_ratio, options.max_docx_entries
        )


def inspect_zip(path: str, label: str, caps: ZipCaps, *, required: str | None = None) -> set[str]:
    """The member names of the zip at ``path``, after refusing bombs and unsafe members.

    ``label`` names the format in messages ("the PPTX's zip ..."). Raises ``PermanentError``
    with ``corrupt`` (not a readable zip, or ``required`` is not a member), ``too_large``
    (members, inflated size or ratio over ``caps``), ``unsafe_archive`` (``..``, absolute,
    NUL or symbolic-link members) or ``encrypted`` (encrypted members).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except ZIP_ERRORS as exc:
        raise PermanentError(
            IngestErrorCode.CORRUPT, f"the {label}'s zip cannot be read: {brief(exc)}"
        ) from exc
    if len(members) > caps.max_entries:
        raise PermanentError(
            IngestErrorCode.TOO_LARGE,
            f"the {label}'s zip has {len(members)} members, more than {caps.max_entries}",
        )
    total = 0
    names = set()
    for member in members:
        name = _shown(member.orig_filename)
        _check_member(member, label)
        total += member.file_size
        if total > caps.max_inflated_bytes:
            raise PermanentError(
                IngestErrorCode.TOO_LARGE,
                f"the {label} inflates to more than {caps.max_inflated_bytes} bytes",
            )
        compressed = max(member.compress_size, 1)
        if member.file_size >= RATIO_CHECK_FROM and member.file_size > caps.max_ratio * compressed:
            raise PermanentError(
                IngestErrorCode.TOO_LARGE,
                f"the {label}'s member {name!r} inflates "
                f"{member.file_size // compressed} times, more than {caps.max_ratio}",
            )
        names.add(member.orig_filename)
    if required is not None and required not in names:
        raise PermanentError(IngestErrorCode.CORRUPT, f"the {label} has no {required}")
    return names


def _check_member(member: zipfile.ZipInfo, label: str) -> None:
    name = _shown(member.orig_filename)
    if _unsafe_name(member.orig_filename):
        raise PermanentError(
            IngestErrorCode.UNSAFE_ARCHIVE, f"the {label}'s zip has an unsafe member {name!r}"
        )
    if stat.S_ISLNK(member.external_attr >> 16):
        raise PermanentError(
            IngestErrorCode.UNSAFE_ARCHIVE, f"the {label}'s zip member {name!r} is a link"
        )
    if member.flag_bits & 0x1:
        raise PermanentError(
            IngestErrorCode.ENCRYPTED, f"the {label}'s zip member {name!r} is encrypted"
        )


def brief(exc: BaseException) -> str:
    """``exc`` for a message: its repr, at most 300 characters (a damaged file can put
    kilobytes of its bytes into a library's message)."""
    text = repr(exc)
    return text if len(text) <= 300 else text[:300] + "..."


def _shown(name: str) -> str:
    # A damaged directory can make a "name" of kilobytes: messages show its start.
    return name if len(name) <= 120 else name[:120] + "..."


def _unsafe_name(name: str) -> bool:
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        return True
    return ".." in normalised.split("/") or "\x00" in name


def open_zip(path: str, label: str) -> zipfile.ZipFile:
    """The zip at ``path``, opened; ``PermanentError("corrupt")`` when it cannot be."""
    try:
        return zipfile.ZipFile(path)
    except ZIP_ERRORS as exc:
        raise PermanentError(
            IngestErrorCode.CORRUPT, f"the {label}'s zip cannot be read: {brief(exc)}"
        ) from exc


def read_member(archive: zipfile.ZipFile, name: str, label: str, limit: int) -> bytes:
    """The inflated bytes of member ``name``, refused as ``too_large`` when its declared size
    is over ``limit`` and as ``corrupt`` when it is missing or does not inflate cleanly."""
    try:
        info = archive.getinfo(name)
    except KeyError as exc:
        raise PermanentError(IngestErrorCode.CORRUPT, f"the {label} has no {name}") from exc
    if info.file_size > limit:
        raise PermanentError(
            IngestErrorCode.TOO_LARGE,
            f"the {label}'s member {name!r} has {info.file_size} bytes, more than {limit}",
        )
    try:
        return archive.read(info)
    except ZIP_ERRORS as exc:
        raise PermanentError(
            IngestErrorCode.CORRUPT, f"the {label}'s member {name!r} cannot be read: {brief(exc)}"
        ) from exc


def library_error(label: str, exc: Exception, where: str = "") -> PermanentError:
    """The error for ``exc``, raised by the library that reads a zip-based document:
    ``unsafe_xml`` when its XML parser refused entities (libxml2 stops an entity
    amplification, defusedxml any declaration), else ``corrupt``. Libraries wrap parser
    errors (openpyxl raises a ValueError ``from`` it), so the chain of causes is looked at."""
    text = brief(exc)
    if any(_refused_entities(cause) for cause in _causes(exc)):
        return PermanentError(
            IngestErrorCode.UNSAFE_XML, f"the {label}{where} has XML entities, refused: {text}"
        )
    return PermanentError(IngestErrorCode.CORRUPT, f"the {label}{where} cannot be read: {text}")


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _refused_entities(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("defusedxml") or "entit" in repr(exc).lower()
