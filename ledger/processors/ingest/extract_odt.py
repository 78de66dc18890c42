"""ODT: paragraphs, headings, lists and tables of an OpenDocument text, from content.xml.

content.xml is streamed through defusedxml's ``iterparse`` straight from the zip member,
and each top-level block is dropped from the tree once its text is out, so memory holds
one block, not the document. ODT never has a DTD: one is refused (``unsafe_xml``), which
stops billion-laughs and external entities before any expansion. Call
``zip_guard.inspect_zip`` first. A password-protected ODT (its manifest lists
``encryption-data``) is ``encrypted``.
"""

from __future__ import annotations

from collections.abc import Iterator
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from ledger.errors import PermanentError
from ledger.processors.ingest.options import IngestErrorCode
from ledger.processors.ingest.zip_guard import ZIP_ERRORS, brief, open_zip, read_member

_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
_PARAGRAPHS = frozenset({_TEXT + "p", _TEXT + "h"})
_SKIPPED = frozenset({_OFFICE + "annotation", _TEXT + "note-citation", _TEXT + "tracked-changes"})
_MAX_SPACES = 1024  # <text:s text:c="2000000000"/> is legal XML and a 2 GB string


def extract_odt(path: str) -> Iterator[str]:
    """The text of the ODT at ``path``: its blocks in document order, separated by blank
    lines; table rows as ``a | b``. Raises ``PermanentError`` with ``encrypted``,
    ``unsafe_xml`` (a DTD) or ``corrupt`` (broken zip data or XML, no content.xml)."""
    archive = open_zip(path, "ODT")
    with archive:
        if "META-INF/manifest.xml" in archive.namelist():
            manifest = read_member(archive, "META-INF/manifest.xml", "ODT", 16 * 2**20)
            if b"encryption-data" in manifest:
                raise PermanentError(IngestErrorCode.ENCRYPTED, "the ODT is password-protected")
        try:
            with archive.open("content.xml") as content:
                first = True
                for block in _blocks(content):
                    if block:
                        yield block if first else "\n\n" + block
                        first = False
        except KeyError as exc:
            raise PermanentError(IngestErrorCode.CORRUPT, "the ODT has no content.xml") from exc
        except DefusedXmlException as exc:
            raise PermanentError(
                IngestErrorCode.UNSAFE_XML,
                f"the ODT's content.xml has a DTD or entities, refused: {brief(exc)}",
            ) from exc
        except (ParseError, *ZIP_ERRORS) as exc:
            raise PermanentError(
                IngestErrorCode.CORRUPT, f"the ODT's content.xml cannot be read: {brief(exc)}"
            ) from exc


def _blocks(content: object) -> Iterator[str]:
    paragraph_depth = 0
    cells: list[list[str]] = []  # the text of each open table cell
    rows: list[list[str]] = []  # the cells of each open table row
    tables: list[list[str]] = []  # the rows of each open table
    body: Element | None = None
    events = iterparse(content, events=("start", "end"), forbid_dtd=True)
    for event, element in events:
        tag = element.tag
        if event == "start":
            if tag in _PARAGRAPHS:
                paragraph_depth += 1
            elif paragraph_depth:
                continue
            elif tag == _OFFICE + "text":
                body = element
            elif tag == _TABLE + "table":
                tables.append([])
            elif tag == _TABLE + "table-row":
                rows.append([])
            elif tag == _TABLE + "table-cell":
                cells.append([])
            continue
        block: str | None = None
        if tag in _PARAGRAPHS:
            paragraph_depth -= 1
            if paragraph_depth:
                continue
            block = _paragraph_text(element).strip()
            element.clear()  # an empty shell stays in its parent: a few dozen bytes
        elif paragraph_depth:
            continue
        elif tag == _TABLE + "table-cell" and cells:
            if rows:
                rows[-1].append(" ".join(part for part in cells.pop() if part))
            else:
                cells.pop()
        elif tag == _TABLE + "table-row" and rows:
            row = rows.pop()
            if any(row) and tables:
                tables[-1].append(" | ".join(row))
        elif tag == _TABLE + "table" and tables:
            block = "\n".join(tables.pop())
        else:
            continue
        if block is None:
            continue
        if cells:  # a paragraph or a nested table inside a table cell
            cells[-1].append(block.replace("\n", " "))
        else:
            yield block
            if body is not None and not tables:
                body.clear()  # what was yielded leaves the tree


def _paragraph_text(paragraph: Element) -> str:
    parts: list[str] = []
    stack: list[Element | str] = [paragraph]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
            continue
        tag = item.tag
        if tag == _TEXT + "s":
            count = item.get(_TEXT + "c", "1")
            spaces = int(count) if count.isascii() and count.isdigit() else 1
            parts.append(" " * min(spaces, _MAX_SPACES))
        elif tag == _TEXT + "tab":
            parts.append("\t")
        elif tag == _TEXT + "line-break":
            parts.append("\n")
        elif tag not in _SKIPPED:
            if item.text:
                parts.append(item.text)
            for child in reversed(item):
                if child.tail:
                    stack.append(child.tail)
                stack.append(child)
    return "".join(parts)
