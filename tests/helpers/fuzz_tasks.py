"""Module-level tasks the fuzz tests send to a real ProcessPool child (they must pickle)."""

from __future__ import annotations

from ledger.processors.ingest.extract_docx import extract_docx, inspect_docx_zip
from ledger.processors.ingest.extract_pdf import extract_pdf
from ledger.processors.ingest.options import IngestOptions

OPTIONS = IngestOptions()


def pdf_text(path: str) -> int:
    """Extract every page of the PDF at ``path``; the number of characters."""
    pdf = extract_pdf(
        path, max_pages=OPTIONS.max_pdf_pages, max_chars_per_page=OPTIONS.max_chars_per_page
    )
    return sum(len(text) for text, _page in pdf.pieces)


def docx_text(path: str) -> int:
    """Inspect the DOCX's zip, then extract its text; the number of characters."""
    inspect_docx_zip(
        path,
        max_inflated_bytes=OPTIONS.max_docx_inflated_bytes,
        max_ratio=OPTIONS.max_docx_ratio,
        max_entries=OPTIONS.max_docx_entries,
    )
    return sum(len(text) for text in extract_docx(path))
