"""PPTX: the text of each slide in order with python-pptx, one page per slide.

A slide's text is its shapes in the order of its shape tree (the title placeholder comes
first in every layout PowerPoint writes), group shapes walked into, tables as ``a | b``
rows, and the speaker notes last. Call ``zip_guard.inspect_zip`` first: python-pptx
inflates every part of the package into memory. Its XML parser does not resolve entities.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pptx
from pptx.enum.shapes import MSO_SHAPE_TYPE

from ledger.processors.ingest.paged import PagedText, capped_part, no_text
from ledger.processors.ingest.zip_guard import library_error


def extract_pptx(path: str, *, max_chars_per_slide: int) -> PagedText:
    """Open the PPTX at ``path``; its slide count and a lazy iterator of slide texts.

    Raises ``PermanentError`` with ``corrupt`` (python-pptx cannot read the package or a
    slide), ``unsafe_xml`` (entities that libxml2 refused to amplify), ``too_large`` (a
    slide over ``max_chars_per_slide`` characters) and, once iterated to the end,
    ``no_text`` when no slide had any text.
    """
    try:
        slides = list(pptx.Presentation(path).slides)
    except MemoryError:
        raise
    except Exception as exc:  # the extractor boundary: zip, XML and package errors
        raise library_error("PPTX", exc) from exc
    return PagedText(len(slides), _slides(slides, max_chars_per_slide))


def _slides(slides: list[Any], max_chars: int) -> Iterator[tuple[str, int]]:
    found_text = False
    for number, slide in enumerate(slides, start=1):
        try:
            blocks = [*_shape_blocks(slide.shapes)]
            if slide.has_notes_slide:
                notes = slide.notes_slide.notes_text_frame
                if notes is not None and notes.text.strip():
                    blocks.append(notes.text)
        except MemoryError:
            raise
        except Exception as exc:
            raise library_error("PPTX", exc, f" (slide {number})") from exc
        text = "\n\n".join(block.strip() for block in blocks if block.strip())
        found_text = found_text or bool(text)
        yield capped_part(_clean(text), number, "slide", max_chars), number
    if not found_text:
        raise no_text("PPTX", len(slides), "slide")


def _shape_blocks(shapes: Iterable[Any]) -> Iterator[str]:
    # Group shapes nest; an explicit stack keeps a hostile nesting depth off the C stack.
    stack: list[Iterator[Any]] = [iter(shapes)]
    while stack:
        shape = next(stack[-1], None)
        if shape is None:
            stack.pop()
            continue
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            stack.append(iter(shape.shapes))
        elif shape.has_text_frame:
            yield shape.text_frame.text
        elif getattr(shape, "has_table", False) and shape.has_table:
            yield _table_text(shape.table)


def _table_text(table: Any) -> str:
    rows = []
    for row in table.rows:
        cells = [cell.text.replace("\n", " ").strip() for cell in row.cells]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _clean(text: str) -> str:
    # python-pptx returns a line break inside a paragraph as vertical tab.
    return text.replace("\x0b", "\n").replace("\r\n", "\n").replace("\r", "\n")
