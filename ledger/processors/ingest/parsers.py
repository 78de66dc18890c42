"""Which library reads which document type, each loaded with the first document of its type.

A pool child that only ever sees text files starts without PDFium, lexbor, python-docx,
python-pptx or openpyxl: every import of a parser is inside the function that needs it.
The PPTX, XLSX, EPUB, ODT and RTF libraries are the ``office`` extra; without it such a
document fails ``missing_extra`` with the install command, and the worker goes on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ledger.errors import PermanentError
from ledger.extras import MissingExtra, require
from ledger.processors.ingest.detect import DocType
from ledger.processors.ingest.options import IngestErrorCode, IngestOptions
from ledger.processors.ingest.zip_guard import ZipCaps, inspect_zip

# Types whose bytes are parsed whole (the rest are parsed from their path by a library).
BYTES_PARSED = frozenset({DocType.HTML, DocType.RTF})
# The modules each type of the ``office`` extra needs.
_OFFICE_MODULES = {
    DocType.PPTX: ("pptx",),
    DocType.XLSX: ("openpyxl", "defusedxml"),
    DocType.EPUB: ("defusedxml",),
    DocType.ODT: ("defusedxml",),
    DocType.RTF: ("striprtf",),
}
# The zip member whose absence makes a zip-based document corrupt.
_ZIP_REQUIRED = {
    DocType.DOCX: "word/document.xml",
    DocType.PPTX: "ppt/presentation.xml",
    DocType.XLSX: "xl/workbook.xml",
    DocType.EPUB: "META-INF/container.xml",
    DocType.ODT: "content.xml",
}


@dataclass(frozen=True, slots=True)
class Parsed:
    pieces: Iterable[tuple[str, int | None]]  # (text, 1-based page) in order, lazily
    pages: int | None = None  # pages, slides, sheets or chapters; None when not paged
    encoding: str | None = None  # the text encoding used, for HTML


def require_parser(doc_type: DocType) -> None:
    """Raise ``PermanentError("missing_extra")`` naming the install command when the
    library for ``doc_type`` is not installed (looked up, not imported)."""
    modules = _OFFICE_MODULES.get(doc_type)
    if modules is None:
        return
    try:
        require("office", *modules, what=f"reading {doc_type.value.upper()} documents")
    except MissingExtra as exc:
        raise PermanentError(IngestErrorCode.MISSING_EXTRA, str(exc)) from exc


def byte_cap(doc_type: DocType, options: IngestOptions) -> int:
    """The size over which a document parsed whole from its bytes is ``too_large``."""
    return options.max_rtf_bytes if doc_type is DocType.RTF else options.max_html_bytes


def parse_bytes(doc_type: DocType, data: bytes, options: IngestOptions) -> Parsed:
    """Parse an HTML or RTF document given whole as ``data``."""
    if doc_type is DocType.RTF:
        from ledger.processors.ingest.extract_rtf import extract_rtf

        return Parsed([(extract_rtf(data), None)])
    from ledger.processors.ingest.extract_html import extract_html

    html = extract_html(data, max_depth=options.max_html_depth)
    return Parsed(((text, None) for text in html.pieces), encoding=html.encoding)


def parse_file(doc_type: DocType, path: str, options: IngestOptions) -> Parsed:
    """Parse the document at ``path`` with its type's library; zip-based types pass the
    zip inspection first."""
    if doc_type is DocType.PDF:
        from ledger.processors.ingest.extract_pdf import extract_pdf

        pdf = extract_pdf(
            path, max_pages=options.max_pdf_pages, max_chars_per_page=options.max_chars_per_page
        )
        return Parsed(pdf.pieces, pages=pdf.pages)
    inspect_zip(path, doc_type.value.upper(), ZipCaps.of(options), required=_ZIP_REQUIRED[doc_type])
    per_page = options.max_chars_per_page
    if doc_type is DocType.DOCX:
        from ledger.processors.ingest.extract_docx import extract_docx

        return Parsed((text, None) for text in extract_docx(path))
    if doc_type is DocType.ODT:
        from ledger.processors.ingest.extract_odt import extract_odt

        return Parsed((text, None) for text in extract_odt(path))
    if doc_type is DocType.PPTX:
        from ledger.processors.ingest.extract_pptx import extract_pptx

        paged = extract_pptx(path, max_chars_per_slide=per_page)
    elif doc_type is DocType.XLSX:
        from ledger.processors.ingest.extract_xlsx import extract_xlsx

        paged = extract_xlsx(path, max_cells=options.max_xlsx_cells)
    elif doc_type is DocType.EPUB:
        from ledger.processors.ingest.extract_epub import extract_epub

        paged = extract_epub(
            path,
            max_chapter_bytes=options.max_html_bytes,
            max_depth=options.max_html_depth,
            max_chars=per_page,
        )
    else:
        raise PermanentError(
            IngestErrorCode.UNSUPPORTED_TYPE, f"no parser for {doc_type.value} documents"
        )
    return Parsed(paged.pieces, pages=paged.pages)
