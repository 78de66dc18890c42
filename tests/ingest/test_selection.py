"""Which files are not documents, by name and by content (no database, no I/O)."""

from __future__ import annotations

import pytest

from ledger.processors.ingest.selection import (
    excluded_by_content,
    excluded_by_name,
    excluded_reason,
)
from tests.ingest.not_documents import png_bytes, sphinx_inventory, woff2_bytes


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("logo.png", "PNG image"),
        ("docs/_static/LOGO.JPEG", "JPEG image"),
        ("icon.svg", "SVG image"),
        ("fonts/inter.woff2", "WOFF2 font"),
        ("_static/searchindex.js", "JS web asset"),
        ("theme.css", "CSS web asset"),
        ("app.js.map", "MAP source map"),
        ("docs.tar.gz", "GZ compressed file"),
        ("site.zip", "ZIP compressed file"),
        ("talk.mp4", "MP4 media file"),
        ("lib.so", "SO binary"),
        ("cache.sqlite", "SQLITE database"),
        ("objects.inv", "Sphinx inventory"),
        ("frontend/package-lock.json", "lock file"),
        ("Cargo.lock", "lock file"),
        ("deps.lock", "LOCK lock file"),
        (".DS_Store", "macOS folder metadata"),
        ("C:\\docs\\logo.PNG", "PNG image"),
    ],
)
def test_names_that_are_not_documents(name: str, what: str) -> None:
    assert excluded_by_name(name) == what


@pytest.mark.parametrize(
    "name",
    ["guide.md", "index.html", "report.pdf", "letter.docx", "README", "notes.txt", ".png",
     "package.json", "legacy.doc", "data.json", "objects.inventory", "deck.pptx", "deck.PPTM",
     "budget.xlsx", "macros.xlsm", "novel.epub", "minutes.odt", "memo.rtf"],
)  # fmt: skip
def test_names_that_may_be_documents(name: str) -> None:
    assert excluded_by_name(name) is None


def test_content_that_is_not_a_document() -> None:
    assert excluded_by_content(png_bytes()) == "PNG image"
    assert excluded_by_content(woff2_bytes()) == "web font"
    assert excluded_by_content(b"\x1f\x8b\x08\x00rest") == "gzip archive"
    assert excluded_by_content(b"\x00\x00\x00\x1cftypisom") == "MP4 media file"
    assert excluded_reason("PNG image") == "excluded_type: PNG image"


@pytest.mark.parametrize(
    "head",
    [
        b"%PDF-1.7\n",
        b"# Title\n\ntext",
        b"<html></html>",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",  # a legacy .doc: a document ingest cannot read
        b"\x7fELF\x02\x01",
        sphinx_inventory(),  # its text header: excluded by its name, not its content
        b"",
    ],
)
def test_content_that_may_be_a_document(head: bytes) -> None:
    assert excluded_by_content(head) is None


def test_include_all_types_is_a_checked_batch_option() -> None:
    from ledger.errors import InvalidInput
    from ledger.processors.ingest.config import IngestConfig

    assert IngestConfig.from_options({}).include_all_types is False
    assert IngestConfig.from_options({"include_all_types": True}).include_all_types is True
    with pytest.raises(InvalidInput, match="include_all_types must be true or false"):
        IngestConfig.from_options({"include_all_types": "yes"})
