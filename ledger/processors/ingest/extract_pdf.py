"""PDF: text page by page with pypdfium2 (PDFium, the engine of Chrome's PDF viewer).

PDFium reads the file lazily from its path, so only the current page is held in memory.
A decompression bomb in a content stream makes PDFium allocate until the worker's memory
limit stops it (the pool reports ``too_large``); the characters of one page and of the
document are capped as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from ledger.errors import PermanentError
from ledger.processors.ingest.options import IngestErrorCode

# C0 controls other than tab and newline, and the non-characters PDFium uses for soft
# hyphens and unmapped glyphs.
_DROP = {code: None for code in range(32) if code not in (9, 10)} | {0xFFFE: None, 0xFFFF: None}


@dataclass(slots=True)
class PdfText:
    pages: int
    pieces: Iterator[tuple[str, int]]  # (text, 1-based page number)


def extract_pdf(path: str, *, max_pages: int, max_chars_per_page: int) -> PdfText:
    """Open the PDF at ``path`` and return its page count and a lazy iterator of page texts.

    Each page's text ends with a blank line that separates it from the next page. Raises
    ``PermanentError`` with ``encrypted`` (a password is needed), ``corrupt`` (PDFium cannot
    load the document or a page), ``too_large`` (over ``max_pages`` pages or
    ``max_chars_per_page`` characters on a page) and, once iterated to the end, ``no_text``
    when no page had any text (a scanned document: OCR is not done here).
    """
    try:
        document = pdfium.PdfDocument(path)
    except FileNotFoundError as exc:
        raise PermanentError(IngestErrorCode.SOURCE_MISSING, "the PDF is gone") from exc
    except pdfium.PdfiumError as exc:
        if exc.err_code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
            raise PermanentError(IngestErrorCode.ENCRYPTED, f"the PDF is encrypted: {exc}") from exc
        raise PermanentError(IngestErrorCode.CORRUPT, f"the PDF cannot be loaded: {exc}") from exc
    except MemoryError:
        raise
    except Exception as exc:
        raise PermanentError(IngestErrorCode.CORRUPT, f"the PDF cannot be loaded: {exc!r}") from exc
    try:
        pages = len(document)
    except Exception as exc:
        document.close()
        raise PermanentError(
            IngestErrorCode.CORRUPT, f"the PDF's pages cannot be counted: {exc!r}"
        ) from exc
    if pages > max_pages:
        document.close()
        raise PermanentError(
            IngestErrorCode.TOO_LARGE, f"the PDF has {pages} pages, more than {max_pages}"
        )
    return PdfText(pages, _pages(document, pages, max_chars_per_page))


def _pages(
    document: pdfium.PdfDocument, pages: int, max_chars_per_page: int
) -> Iterator[tuple[str, int]]:
    found_text = False
    try:
        for index in range(pages):
            text = _page_text(document, index, max_chars_per_page)
            if text.strip():
                found_text = True
            yield text + "\n\n", index + 1
    finally:
        document.close()
    if not found_text:
        raise PermanentError(
            IngestErrorCode.NO_TEXT,
            f"the PDF has {pages} page(s) but no extractable text "
            "(scanned images? OCR is not supported)",
        )


def _page_text(document: pdfium.PdfDocument, index: int, max_chars: int) -> str:
    page = textpage = None
    try:
        page = document[index]
        textpage = page.get_textpage()
        count = textpage.count_chars()
        if count > max_chars:
            raise PermanentError(
                IngestErrorCode.TOO_LARGE,
                f"page {index + 1} has {count} characters, more than {max_chars}",
            )
        # get_text_bounded, unlike get_text_range, keeps characters outside the BMP.
        text = textpage.get_text_bounded() if count else ""
    except (PermanentError, MemoryError):
        raise
    except Exception as exc:
        raise PermanentError(
            IngestErrorCode.CORRUPT, f"page {index + 1} of the PDF cannot be read: {exc!r}"
        ) from exc
    finally:
        if textpage is not None:
            textpage.close()
        if page is not None:
            page.close()
    return text.replace("\r\n", "\n").replace("\r", "\n").translate(_DROP).strip()
