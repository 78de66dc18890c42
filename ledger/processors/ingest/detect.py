"""Which kind of document a file is: by its content first, by its name second."""

from __future__ import annotations

import os
import zipfile
from enum import StrEnum

from ledger.errors import PermanentError
from ledger.processors.ingest.options import IngestErrorCode
from ledger.processors.ingest.selection import NOT_DOCUMENT_MAGIC

HEAD_BYTES = 8192  # what detection reads of the file


class DocType(StrEnum):
    PDF = "pdf"
    DOCX = "docx"
    HTML = "html"
    MARKDOWN = "markdown"
    TEXT = "text"


# Formats recognised by their first bytes that ingest does not read: those that are not
# documents at all (the ingest processor skips them before detection), and these.
_FOREIGN_MAGIC: tuple[tuple[bytes, str], ...] = (
    *NOT_DOCUMENT_MAGIC,
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "legacy Office (OLE2) document"),
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "Windows executable"),
    (b"SQLite format 3\x00", "SQLite database"),
)
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<meta ", b"<title>")
_HTML_EXTENSIONS = frozenset({".html", ".htm", ".xhtml", ".shtml"})
_MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mdx"})
_BINARY_EXTENSIONS = {".pdf": "PDF", ".docx": "DOCX", ".docm": "DOCX"}
# Control bytes other than tab, newline, vertical tab, form feed, carriage return and escape.
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13, 27)) + b"\x7f"


def detect_type(path: str, head: bytes) -> DocType:
    """The document type of ``path``, whose first bytes are ``head`` (up to HEAD_BYTES).

    Raises ``PermanentError`` with ``empty_file``, ``unsupported_type`` (binary, a foreign
    format, or a name that promises PDF/DOCX over other content) or ``corrupt`` (a zip named
    .docx that cannot be opened).
    """
    if not head:
        raise PermanentError(IngestErrorCode.EMPTY_FILE, "the file is empty (0 bytes)")
    ext = os.path.splitext(path)[1].lower()
    # PDF readers accept the header anywhere in the first kilobyte.
    if b"%PDF-" in head[:1024]:
        return DocType.PDF
    if head.startswith(b"PK\x03\x04"):
        return _detect_zip(path, ext)
    for magic, name in _FOREIGN_MAGIC:
        if head.startswith(magic):
            raise PermanentError(IngestErrorCode.UNSUPPORTED_TYPE, f"unsupported format: {name}")
    if _looks_binary(head):
        raise PermanentError(
            IngestErrorCode.UNSUPPORTED_TYPE, "binary content of an unknown format"
        )
    if ext in _BINARY_EXTENSIONS:
        raise PermanentError(
            IngestErrorCode.UNSUPPORTED_TYPE,
            f"named {ext} but the content is text, not {_BINARY_EXTENSIONS[ext]}",
        )
    if _looks_like_html(head) or ext in _HTML_EXTENSIONS:
        return DocType.HTML
    if ext in _MARKDOWN_EXTENSIONS:
        return DocType.MARKDOWN
    return DocType.TEXT


def _detect_zip(path: str, ext: str) -> DocType:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        if ext in (".docx", ".docm"):
            raise PermanentError(
                IngestErrorCode.CORRUPT, f"the DOCX's zip cannot be read: {exc}"
            ) from exc
        raise PermanentError(
            IngestErrorCode.UNSUPPORTED_TYPE, "a zip archive that cannot be read"
        ) from exc
    if "word/document.xml" in names:
        return DocType.DOCX
    raise PermanentError(
        IngestErrorCode.UNSUPPORTED_TYPE, "a zip archive that is not a Word document"
    )


def _looks_binary(head: bytes) -> bool:
    if head.startswith(_BOMS) or head.startswith((b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")):
        return False
    if utf16_without_bom(head) is not None:
        return False
    # Text in any encoding has almost no C0 control bytes; random or compressed data has
    # about 11 %. NUL bytes sprinkled in text stay well under the threshold.
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return controls > max(8, len(head) // 20)


def utf16_without_bom(head: bytes) -> str | None:
    """``utf-16-le`` or ``utf-16-be`` when the NULs fall on one parity (Latin text)."""
    sample = head[: len(head) - len(head) % 2]
    if len(sample) < 4:
        return None
    even_nuls = sample[0::2].count(0)
    odd_nuls = sample[1::2].count(0)
    half = len(sample) // 2
    if odd_nuls > 0.4 * half and even_nuls < 0.05 * half:
        return "utf-16-le"
    if even_nuls > 0.4 * half and odd_nuls < 0.05 * half:
        return "utf-16-be"
    return None


def _looks_like_html(head: bytes) -> bool:
    text = _ascii_view(head).lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")):
        return True
    if text.startswith((b"<!--", b"<?xml")) or text.startswith(b"<"):
        window = text[:2048]
        return any(marker in window for marker in _HTML_MARKERS)
    return False


def _ascii_view(head: bytes) -> bytes:
    """The head without a BOM, and without the NULs of UTF-16, for marker search."""
    for bom in _BOMS:
        if head.startswith(bom):
            head = head[len(bom) :]
            break
    if utf16_without_bom(head) is not None or head[:2].count(0) == 1:
        head = head.replace(b"\x00", b"")
    return head
