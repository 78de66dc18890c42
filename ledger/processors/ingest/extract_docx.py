"""DOCX: paragraphs and tables in document order with python-docx, after a zip inspection.

python-docx inflates every part of the package into memory, so before it sees the file the
zip's directory is checked by ``zip_guard`` (zip bombs, unsafe members). Its XML parser does
not resolve entities.
"""

from __future__ import annotations

from collections.abc import Iterator

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from ledger.errors import PermanentError
from ledger.processors.ingest.options import IngestErrorCode
from ledger.processors.ingest.zip_guard import ZipCaps, inspect_zip


def inspect_docx_zip(
    path: str, *, max_inflated_bytes: int, max_ratio: int, max_entries: int
) -> None:
    """Refuse zip bombs and unsafe member names before anything is inflated.

    Raises ``PermanentError`` with ``corrupt`` (not a readable zip, no word/document.xml),
    ``too_large`` (entries, inflated size or ratio over the caps), ``unsafe_archive``
    (``..``, absolute or symbolic-link members) or ``encrypted`` (encrypted members).
    """
    caps = ZipCaps(max_inflated_bytes, max_ratio, max_entries)
    inspect_zip(path, "DOCX", caps, required="word/document.xml")


def extract_docx(path: str) -> Iterator[str]:
    """The text of the DOCX at ``path``: paragraphs, then table rows as ``a | b | c``.

    Blocks are separated by blank lines. Call ``inspect_docx_zip`` first. Raises
    ``PermanentError("corrupt")`` if python-docx cannot read the document.
    """
    try:
        document = docx.Document(path)
        blocks = [text for text in _blocks(document.iter_inner_content()) if text.strip()]
    except MemoryError:
        raise
    except Exception as exc:  # the extractor boundary: zip, XML and package errors
        raise PermanentError(IngestErrorCode.CORRUPT, f"the DOCX cannot be read: {exc!r}") from exc
    for index, block in enumerate(blocks):
        yield block if index == 0 else "\n\n" + block


def _blocks(content: Iterator[Paragraph | Table]) -> Iterator[str]:
    for item in content:
        if isinstance(item, Paragraph):
            yield item.text
        else:
            yield _table_text(item)


def _table_text(table: Table) -> str:
    rows = []
    for row in table.rows:
        cells = []
        previous = None
        for cell in row.cells:
            # A merged cell is returned once per grid column it spans.
            if previous is not None and cell._tc is previous:
                continue
            previous = cell._tc
            nested = [_table_text(inner) for inner in cell.tables]
            text = " ".join(part for part in [cell.text.strip(), *nested] if part)
            cells.append(text.replace("\n", " "))
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)
