"""XLSX: the cells of each sheet, row by row, with openpyxl in read-only mode; one page per
sheet, headed by the sheet's name.

Read-only mode streams a sheet's XML instead of building the workbook in memory. A sheet
declares its size (``<dimension ref="A1:XFD1048576"/>``) and openpyxl pads every row to
it, and yields empty rows up to it: a hostile or careless declaration would make ingest
visit 17 billion empty cells. The declaration is dropped (``reset_dimensions``), so rows
are as wide as their last cell and missing rows are skipped; the cells visited (empty
ones inside a row's span included) are capped by ``max_cells``, and the text is handed on
in pieces as the rows stream, so a sheet is never held whole. Formulas give the value
Excel cached when it saved the file (``data_only``); a formula never calculated gives
nothing. With defusedxml installed (the ``office`` extra) openpyxl parses with it, which
refuses entity declarations.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import openpyxl

from ledger.errors import PermanentError
from ledger.processors.ingest.options import IngestErrorCode
from ledger.processors.ingest.paged import PagedText, no_text
from ledger.processors.ingest.zip_guard import library_error

_PIECE_CHARS = 64 * 1024  # rows are handed on in pieces of about this many characters


def extract_xlsx(path: str, *, max_cells: int) -> PagedText:
    """Open the XLSX at ``path``; its sheet count and a lazy iterator of sheet texts.

    Each sheet's text is ``Sheet: <name>`` and then one line per row with values, its
    non-empty cells joined by `` | ``, in pieces of about ``_PIECE_CHARS`` characters (a
    sheet may be far larger than a page). Raises ``PermanentError`` with ``corrupt``
    (openpyxl cannot read the workbook or a sheet), ``unsafe_xml`` (entity declarations),
    ``too_large`` (more than ``max_cells`` cells visited) and, once iterated to the end,
    ``no_text`` when no cell had a value.
    """
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except MemoryError:
        raise
    except Exception as exc:  # the extractor boundary: zip, XML and workbook errors
        raise library_error("XLSX", exc) from exc
    return PagedText(len(workbook.worksheets), _sheets(workbook, max_cells))


def _sheets(workbook: Any, max_cells: int) -> Iterator[tuple[str, int]]:
    visited = 0
    found_text = False
    sheets = len(workbook.worksheets)
    try:
        for number, sheet in enumerate(workbook.worksheets, start=1):
            lines = [f"Sheet: {sheet.title}"]
            length = len(lines[0])
            try:
                sheet.reset_dimensions()
                for row in sheet.iter_rows(values_only=True):
                    # openpyxl yields an empty tuple for each missing row below the last
                    # one: counted too, or a row numbered 2,000,000,000 would take hours.
                    visited += len(row) or 1
                    if visited > max_cells:
                        raise PermanentError(
                            IngestErrorCode.TOO_LARGE,
                            f"the XLSX has more than {max_cells} cells (at sheet {number}, "
                            f"{sheet.title!r})",
                        )
                    cells = [_cell_text(value) for value in row if value is not None]
                    if not any(cells):
                        continue
                    found_text = True
                    lines.append(" | ".join(cell for cell in cells if cell))
                    length += len(lines[-1]) + 1
                    if length >= _PIECE_CHARS:
                        yield "\n".join(lines) + "\n", number
                        lines, length = [], 0
            except (PermanentError, MemoryError):
                raise
            except Exception as exc:
                raise library_error("XLSX", exc, f" (sheet {number})") from exc
            yield "\n".join(lines).rstrip("\n") + "\n\n", number
    finally:
        workbook.close()
    if not found_text:
        raise no_text("XLSX", sheets, "sheet")


def _cell_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    if isinstance(value, datetime.datetime) and value.time() == datetime.time():
        return value.date().isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return str(value).replace("\r\n", "\n").replace("\n", " ").strip()
