"""DOCX: paragraphs and tables in document order with python-docx, after a zip inspection.

python-docx inflates every part of the package into memory, so before it sees the file the
zip's directory is checked: the number of members, the sum of their inflated sizes and the
compression ratio of large members are capped (zip bombs), and members named with ``..``,
an absolute path or as symbolic links are refused. Python's zipfile never inflates a member
beyond the size its directory declares (a member that would is a CRC error), so the caps
also hold while python-docx inflates. Its XML parser does not resolve entities.
"""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Iterator

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from ledger.errors import PermanentError
from ledger.processors.ingest.options import IngestErrorCode

_RATIO_CHECK_FROM = 1 << 20  # members smaller than this may compress as well as they like


def inspect_docx_zip(
    path: str, *, max_inflated_bytes: int, max_ratio: int, max_entries: int
) -> None:
    """Refuse zip bombs and unsafe member names before anything is inflated.

    Raises ``PermanentError`` with ``corrupt`` (not a readable zip, no word/document.xml),
    ``too_large`` (entries, inflated size or ratio over the caps), ``unsafe_archive``
    (``..``, absolute or symbolic-link members) or ``encrypted`` (encrypted members).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise PermanentError(
            IngestErrorCode.CORRUPT, f"the DOCX's zip cannot be read: {exc}"
        ) from exc
    if len(members) > max_entries:
        raise PermanentError(
            IngestErrorCode.TOO_LARGE,
            f"the DOCX's zip has {len(members)} members, more than {max_entries}",
        )
    total = 0
    names = set()
    for member in members:
        name = member.orig_filename
        if _unsafe_name(name):
            raise PermanentError(
                IngestErrorCode.UNSAFE_ARCHIVE, f"the DOCX's zip has an unsafe member {name!r}"
            )
        if stat.S_ISLNK(member.external_attr >> 16):
            raise PermanentError(
                IngestErrorCode.UNSAFE_ARCHIVE, f"the DOCX's zip member {name!r} is a link"
            )
        if member.flag_bits & 0x1:
            raise PermanentError(
                IngestErrorCode.ENCRYPTED, f"the DOCX's zip member {name!r} is encrypted"
            )
        total += member.file_size
        if total > max_inflated_bytes:
            raise PermanentError(
                IngestErrorCode.TOO_LARGE,
                f"the DOCX inflates to more than {max_inflated_bytes} bytes",
            )
        if member.file_size >= _RATIO_CHECK_FROM and member.file_size > max_ratio * max(
            member.compress_size, 1
        ):
            raise PermanentError(
                IngestErrorCode.TOO_LARGE,
                f"the DOCX's member {name!r} inflates "
                f"{member.file_size // max(member.compress_size, 1)} times, more than {max_ratio}",
            )
        names.add(name)
    if "word/document.xml" not in names:
        raise PermanentError(IngestErrorCode.CORRUPT, "the DOCX has no word/document.xml")


def _unsafe_name(name: str) -> bool:
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        return True
    return ".." in normalised.split("/") or "\x00" in name


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
