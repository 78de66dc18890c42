"""Which kind of document a file is: by its content first, by its name second."""

from __future__ import annotations

import os
import zipfile
from enum import StrEnum

from ledger.errors import PermanentError
from ledger.processors.ingest.options import IngestErrorCode
from ledger.processors.ingest.selection import NOT_DOCUMENT_MAGIC
from ledger.processors.ingest.zip_guard import ZIP_ERRORS, brief

HEAD_BYTES = 8192  # what detection reads of the file


class DocType(StrEnum):
    PDF = "pdf"
    DOCX = "docx"
    PPTX = "pptx"
    XLSX = "xlsx"
    EPUB = "epub"
    ODT = "odt"
    RTF = "rtf"
    HTML = "html"
    MARKDOWN = "markdown"
    TEXT = "text"


_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Formats recognised by their first bytes that ingest does not read: those that are not
# documents at all (the ingest processor skips them before detection), and these.
_FOREIGN_MAGIC: tuple[tuple[bytes, str], ...] = (
    *NOT_DOCUMENT_MAGIC,
    (_OLE2, "legacy Office (OLE2) document"),
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "Windows executable"),
    (b"SQLite format 3\x00", "SQLite database"),
)
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<meta ", b"<title>")
_HTML_EXTENSIONS = frozenset({".html", ".htm", ".xhtml", ".shtml"})
_MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mdx"})
# Names that promise a format ingest reads by content: other content under them is refused.
_FORMAT_EXTENSIONS = {
    ".pdf": "PDF",
    ".docx": "DOCX",
    ".docm": "DOCX",
    ".pptx": "PPTX",
    ".pptm": "PPTX",
    ".xlsx": "XLSX",
    ".xlsm": "XLSX",
    ".epub": "EPUB",
    ".odt": "ODT",
    ".rtf": "RTF",
}
_ZIP_EXTENSIONS = {
    ext: name for ext, name in _FORMAT_EXTENSIONS.items() if name not in ("PDF", "RTF")
}
# Zip members that name an Office Open XML package's kind.
_OOXML_PARTS = (
    ("word/document.xml", DocType.DOCX),
    ("ppt/presentation.xml", DocType.PPTX),
    ("xl/workbook.xml", DocType.XLSX),
)
# The first member of an EPUB or OpenDocument file, stored uncompressed, says what it is.
_ZIP_MIMETYPES = {
    b"application/epub+zip": DocType.EPUB,
    b"application/vnd.oasis.opendocument.text": DocType.ODT,
}
# Control bytes other than tab, newline, vertical tab, form feed, carriage return and escape.
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13, 27)) + b"\x7f"


def detect_type(path: str, head: bytes) -> DocType:
    """The document type of ``path``, whose first bytes are ``head`` (up to HEAD_BYTES).

    Raises ``PermanentError`` with ``empty_file``, ``unsupported_type`` (binary, a foreign
    format, or a name that promises PDF, DOCX, PPTX, XLSX, EPUB, ODT or RTF over other
    content) or ``corrupt`` (a zip named as a zip-based format that cannot be opened).
    """
    if not head:
        raise PermanentError(IngestErrorCode.EMPTY_FILE, "the file is empty (0 bytes)")
    ext = os.path.splitext(path)[1].lower()
    # PDF readers accept the header anywhere in the first kilobyte.
    if b"%PDF-" in head[:1024]:
        return DocType.PDF
    if head.startswith(b"PK\x03\x04"):
        return _detect_zip(path, ext)
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{\\rtf"):
        return DocType.RTF
    if head.startswith(_OLE2) and _ZIP_EXTENSIONS.get(ext) in ("DOCX", "PPTX", "XLSX"):
        # Office saves a password-protected DOCX, PPTX or XLSX inside an OLE2 container.
        raise PermanentError(
            IngestErrorCode.UNSUPPORTED_TYPE,
            f"named {ext} but stored as OLE2: a password-protected Office file, or a legacy "
            "binary one renamed",
        )
    for magic, name in _FOREIGN_MAGIC:
        if head.startswith(magic):
            raise PermanentError(IngestErrorCode.UNSUPPORTED_TYPE, f"unsupported format: {name}")
    if _looks_binary(head):
        raise PermanentError(
            IngestErrorCode.UNSUPPORTED_TYPE, "binary content of an unknown format"
        )
    if ext in _FORMAT_EXTENSIONS:
        raise PermanentError(
            IngestErrorCode.UNSUPPORTED_TYPE,
            f"named {ext} but the content is text, not {_FORMAT_EXTENSIONS[ext]}",
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
            mimetype = _mimetype(archive) if "mimetype" in names else b""
    except (*ZIP_ERRORS, OSError) as exc:
        if ext in _ZIP_EXTENSIONS:
            label = _ZIP_EXTENSIONS[ext]
            raise PermanentError(
                IngestErrorCode.CORRUPT, f"the {label}'s zip cannot be read: {brief(exc)}"
            ) from exc
        raise PermanentError(
            IngestErrorCode.UNSUPPORTED_TYPE, "a zip archive that cannot be read"
        ) from exc
    for part, doc_type in _OOXML_PARTS:
        if part in names:
            return doc_type
    if mimetype in _ZIP_MIMETYPES:
        return _ZIP_MIMETYPES[mimetype]
    if mimetype.startswith(b"application/vnd.oasis.opendocument."):
        kind = mimetype.decode("ascii", "replace").rsplit(".", 1)[-1]
        raise PermanentError(
            IngestErrorCode.UNSUPPORTED_TYPE,
            f"an OpenDocument {kind}, not a text document (only .odt is read)",
        )
    if ext in _ZIP_EXTENSIONS:
        raise PermanentError(
            IngestErrorCode.UNSUPPORTED_TYPE,
            f"named {ext} but the zip is not a {_ZIP_EXTENSIONS[ext]} document",
        )
    raise PermanentError(
        IngestErrorCode.UNSUPPORTED_TYPE,
        "a zip archive that is not a Word, PowerPoint, Excel, EPUB or OpenDocument text file",
    )


def _mimetype(archive: zipfile.ZipFile) -> bytes:
    if archive.getinfo("mimetype").flag_bits & 0x1:
        raise PermanentError(IngestErrorCode.ENCRYPTED, "the zip's mimetype member is encrypted")
    # Read at most 100 bytes: a hostile "mimetype" member may inflate to gigabytes.
    with archive.open("mimetype") as member:
        return member.read(100).strip()


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
