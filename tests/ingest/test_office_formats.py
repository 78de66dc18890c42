"""PPTX, XLSX, EPUB, ODT and RTF on real files made here: detection by content, the text
and the pages (slides, sheets, chapters) each extractor gives, the caps, and a missing
``office`` extra."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger.errors import PermanentError, ProcessingError
from ledger.processors.ingest import (
    ChunkRecord,
    DocType,
    IngestOptions,
    IngestOutcome,
    detect_type,
    iter_spool,
    process_file,
)
from ledger.processors.ingest.detect import HEAD_BYTES
from ledger.processors.ingest.extract_epub import extract_epub
from ledger.processors.ingest.extract_odt import extract_odt
from ledger.processors.ingest.extract_pptx import extract_pptx
from ledger.processors.ingest.extract_rtf import extract_rtf
from ledger.processors.ingest.extract_xlsx import extract_xlsx
from tests.ingest import office_fixtures as of

pytestmark = pytest.mark.timeout(120)

BIG = 10**7


def process(
    path: Path, options: IngestOptions | None = None
) -> tuple[IngestOutcome, list[ChunkRecord]]:
    spool = path.parent / "spool"
    spool.mkdir(exist_ok=True)
    outcome = process_file(
        str(path),
        expected_size=None,
        expected_mtime_ns=None,
        expected_sha256=None,
        options=options or IngestOptions(),
        spool_dir=str(spool),
    )
    chunks = [c for batch in iter_spool(outcome.spool_path, batch_size=100) for c in batch]
    os.unlink(outcome.spool_path)
    return outcome, chunks


def code_of(path: Path, options: IngestOptions | None = None) -> str:
    with pytest.raises(ProcessingError) as info:
        process(path, options)
    return info.value.code


def head(path: Path) -> bytes:
    return path.read_bytes()[:HEAD_BYTES]


# -- detection -------------------------------------------------------------------------------


def test_each_format_is_detected_by_content_whatever_its_name(tmp_path: Path) -> None:
    made = {
        DocType.PPTX: of.make_pptx(tmp_path / "a.bin", [of.Slide("t")]),
        DocType.XLSX: of.make_xlsx(tmp_path / "b.dat", {"S": [["x"]]}),
        DocType.EPUB: of.make_epub(tmp_path / "c", [("One", ["x"])]),
        DocType.ODT: of.make_odt(tmp_path / "d.txt", "<text:p>x</text:p>"),
        DocType.RTF: of.make_rtf(tmp_path / "e.txt", ["x"]),
    }
    for expected, path in made.items():
        assert detect_type(str(path), head(path)) == expected, path.name
    # A workbook named .pptx is read as the workbook it is.
    renamed = tmp_path / "deck.pptx"
    renamed.write_bytes(made[DocType.XLSX].read_bytes())
    assert detect_type(str(renamed), head(renamed)) == DocType.XLSX


@pytest.mark.parametrize("ext", [".pptx", ".xlsx", ".epub", ".odt", ".rtf", ".xlsm", ".pptm"])
def test_a_name_promising_a_format_over_text_is_refused(ext: str) -> None:
    with pytest.raises(PermanentError, match=f"named \\{ext} but the content is text") as info:
        detect_type(f"report{ext}", b"an error page saved under the wrong name")
    assert info.value.code == "unsupported_type"


def test_an_ole2_file_under_an_office_name_says_it_may_be_password_protected() -> None:
    with pytest.raises(PermanentError, match="password-protected Office file") as info:
        detect_type("budget.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500)
    assert info.value.code == "unsupported_type"


def test_other_zips_under_those_names_are_refused_with_what_they_are(tmp_path: Path) -> None:
    other = of.write_zip(tmp_path / "deck.pptx", {"notes.txt": b"x"})
    with pytest.raises(PermanentError, match=r"named \.pptx but the zip is not a PPTX") as info:
        detect_type(str(other), head(other))
    assert info.value.code == "unsupported_type"
    sheet = of.write_zip(
        tmp_path / "table.ods",
        of.odt_members(b"<x/>", mimetype="application/vnd.oasis.opendocument.spreadsheet"),
    )
    with pytest.raises(PermanentError, match="OpenDocument spreadsheet") as info:
        detect_type(str(sheet), head(sheet))
    assert info.value.code == "unsupported_type"
    broken = tmp_path / "broken.epub"
    broken.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(PermanentError, match="EPUB's zip cannot be read") as info:
        detect_type(str(broken), head(broken))
    assert info.value.code == "corrupt"


# -- PPTX ------------------------------------------------------------------------------------


def test_pptx_slides_in_order_with_titles_bodies_tables_and_notes(tmp_path: Path) -> None:
    path = of.make_pptx(
        tmp_path / "deck.pptx",
        [
            of.Slide("Quarterly review", ["Revenue grew", "Costs fell"], notes="Say thanks"),
            of.Slide("Numbers", ["See the table"], table=[["region", "sales"], ["north", "12"]]),
            of.Slide("Questions"),
        ],
    )
    deck = extract_pptx(str(path), max_chars_per_slide=BIG)
    assert deck.pages == 3
    assert list(deck.pieces) == [
        ("Quarterly review\n\nRevenue grew\nCosts fell\n\nSay thanks\n\n", 1),
        ("Numbers\n\nSee the table\n\nregion | sales\nnorth | 12\n\n", 2),
        ("Questions\n\n", 3),
    ]
    too_long = extract_pptx(str(path), max_chars_per_slide=20)
    with pytest.raises(PermanentError, match="slide 1 has more than 20 characters"):
        list(too_long.pieces)


def test_a_pptx_of_empty_slides_has_no_text(tmp_path: Path) -> None:
    path = of.make_pptx(tmp_path / "empty.pptx", [of.Slide(""), of.Slide("")])
    assert code_of(path) == "no_text"


# -- XLSX ------------------------------------------------------------------------------------


def test_xlsx_sheets_by_name_with_cached_formula_values(tmp_path: Path) -> None:
    path = of.make_xlsx(
        tmp_path / "book.xlsx",
        {
            "Budget": [["item", "cost"], ["tea", 3.5], ["cups", 4], [None, None], ["=B2+B3"]],
            "Notes": [["line\none", None, "far"]],
        },
        cached={"B2+B3": "7.5"},
    )
    book = extract_xlsx(str(path), max_cells=BIG)
    assert book.pages == 2
    assert list(book.pieces) == [
        ("Sheet: Budget\nitem | cost\ntea | 3.5\ncups | 4\n7.5\n\n", 1),
        ("Sheet: Notes\nline one | far\n\n", 2),
    ]


def test_xlsx_sheet_declaring_the_whole_grid_reads_only_its_cells(tmp_path: Path) -> None:
    path = of.make_sparse_giant_xlsx(tmp_path / "giant.xlsx")
    book = extract_xlsx(str(path), max_cells=IngestOptions().max_xlsx_cells)
    assert list(book.pieces) == [("Sheet: Huge\ncorner | value\nfar corner\n\n", 1)]


def test_a_long_sheet_streams_in_pieces_of_its_page(tmp_path: Path) -> None:
    rows = [[n, f"row {n} of a long sheet"] for n in range(20_000)]
    path = of.make_xlsx(tmp_path / "long.xlsx", {"One": [["first"]], "Long": rows})
    pieces = list(extract_xlsx(str(path), max_cells=BIG).pieces)
    assert [page for _text, page in pieces][:2] == [1, 2]
    assert {page for _text, page in pieces[1:]} == {2}
    assert len(pieces) > 5
    assert all(len(text) < 70_000 for text, _page in pieces)
    text = "".join(text for text, _page in pieces[1:])
    assert text.startswith("Sheet: Long\n0 | row 0 of a long sheet\n1 | row 1")
    assert text.endswith("19999 | row 19999 of a long sheet\n\n")
    assert text.count("\n") == 1 + 20_000 + 1  # the name, the rows, the blank line
    assert "\n\n" not in text[:-2]  # pieces join without gaps


def test_xlsx_cells_visited_are_capped(tmp_path: Path) -> None:
    # 2,000 rows that each reach column XFD span 32 million cells.
    wide = of.make_wide_rows_xlsx(tmp_path / "wide.xlsx")
    with pytest.raises(PermanentError, match="more than 10000000 cells") as info:
        list(extract_xlsx(str(wide), max_cells=10_000_000).pieces)
    assert info.value.code == "too_large"
    rows = of.make_xlsx(tmp_path / "rows.xlsx", {"S": [[n, n] for n in range(100)]})
    assert code_of(rows, IngestOptions(max_xlsx_cells=150)) == "too_large"
    assert process(rows, IngestOptions(max_xlsx_cells=200))[0].pages == 1


# -- EPUB ------------------------------------------------------------------------------------


def test_epub_chapters_in_spine_order_one_page_each(tmp_path: Path) -> None:
    path = of.make_epub(
        tmp_path / "novel.epub",
        [("Prologue", ["It began."]), ("Middle", ["It went on."]), ("End", ["It ended."])],
        spine=[2, 0, 1],
    )
    book = extract_epub(str(path), max_chapter_bytes=BIG, max_depth=256, max_chars=BIG)
    assert book.pages == 3
    pieces = list(book.pieces)
    assert [page for _text, page in pieces] == [1, 2, 3]
    assert [text.split("\n\n")[0] for text, _page in pieces] == ["End", "Prologue", "Middle"]
    assert pieces[0][0] == "End\n\nIt ended.\n\n"  # not the <title> every chapter repeats


def test_epub_font_obfuscation_is_not_drm_but_encrypted_chapters_are(tmp_path: Path) -> None:
    members = of.epub_members([("One", ["Readable text."])])
    fonts = of.write_zip(
        tmp_path / "fonts.epub",
        {**members, "META-INF/encryption.xml": of.drm_encryption_xml(
            "OEBPS/font.otf", "http://www.idpf.org/2008/embedding")},
    )  # fmt: skip
    assert "Readable text." in process(fonts)[1][0].text
    for marker in ("META-INF/rights.xml", "META-INF/sinf.xml"):
        drm = of.write_zip(tmp_path / "drm.epub", {**members, marker: b"<rights/>"})
        assert code_of(drm) == "encrypted"


def test_epub_spine_naming_a_missing_chapter_is_corrupt(tmp_path: Path) -> None:
    members = of.epub_members([("One", ["x"]), ("Two", ["y"])])
    del members["OEBPS/text/ch01.xhtml"]
    path = of.write_zip(tmp_path / "holes.epub", members)
    with pytest.raises(ProcessingError, match=r"no OEBPS/text/ch01\.xhtml") as info:
        process(path)
    assert info.value.code == "corrupt"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"META-INF/container.xml": None}, "has no META-INF/container.xml"),
        ({"META-INF/container.xml": b"<container><rootfiles>"}, "not well-formed XML"),
        ({"META-INF/container.xml": b"<container/>"}, "names no package document"),
        ({"OEBPS/content.opf": None}, "has no OEBPS/content.opf"),
        ({"OEBPS/content.opf": b"<package><spine/></package>"}, "spine lists no chapters"),
        ({"OEBPS/content.opf": b'<package><spine><itemref idref="x"/></spine></package>'},
         "spine names 'x', not in its manifest"),
    ],
)  # fmt: skip
def test_a_malformed_epub_container_is_corrupt_with_its_reason(
    tmp_path: Path, change: dict[str, bytes | None], message: str
) -> None:
    members = of.epub_members([("One", ["x"])])
    for name, data in change.items():
        if data is None:
            del members[name]
        else:
            members[name] = data
    with pytest.raises(ProcessingError, match=message) as info:
        process(of.write_zip(tmp_path / "bad.epub", members))
    assert info.value.code == "corrupt"


def test_epub_chapter_over_the_html_cap_is_too_large(tmp_path: Path) -> None:
    path = of.make_epub(tmp_path / "long.epub", [("One", ["word " * 2000])])
    assert code_of(path, IngestOptions(max_html_bytes=5000)) == "too_large"


# -- ODT -------------------------------------------------------------------------------------


def test_odt_headings_paragraphs_lists_tables_in_order(tmp_path: Path) -> None:
    body = (
        '<text:h text:outline-level="1">Minutes</text:h>'
        '<text:p>Present:<text:s text:c="2"/>Ann<text:tab/>Bob<text:line-break/>late: Cy</text:p>'
        "<text:list><text:list-item><text:p>first point</text:p></text:list-item>"
        "<text:list-item><text:p>second point</text:p></text:list-item></text:list>"
        "<table:table><table:table-row><table:table-cell><text:p>item</text:p></table:table-cell>"
        "<table:table-cell><text:p>owner</text:p></table:table-cell></table:table-row>"
        "<table:table-row><table:table-cell><text:p>budget</text:p><text:p>2027</text:p>"
        "</table:table-cell><table:table-cell><text:p>Ann</text:p></table:table-cell>"
        "</table:table-row></table:table>"
        "<text:p>Closed<office:annotation><text:p>COMMENT_NOISE</text:p></office:annotation>"
        '<text:s text:c="99999999999"/>.</text:p>'
    )
    path = of.make_odt(tmp_path / "minutes.odt", body)
    text = "".join(extract_odt(str(path)))
    assert text.startswith(
        "Minutes\n\nPresent:  Ann\tBob\nlate: Cy\n\nfirst point\n\nsecond point\n\n"
        "item | owner\nbudget 2027 | Ann\n\nClosed"
    )
    assert "COMMENT_NOISE" not in text
    assert text.endswith(" " * 1024 + ".")  # a space count is capped, not trusted


def test_password_protected_odt_is_encrypted(tmp_path: Path) -> None:
    members = of.odt_members(b"\x8f\x12 encrypted bytes")
    members["META-INF/manifest.xml"] = members["META-INF/manifest.xml"].replace(
        b"</manifest:manifest>", b"<manifest:encryption-data/></manifest:manifest>"
    )
    assert code_of(of.write_zip(tmp_path / "secret.odt", members)) == "encrypted"


# -- RTF -------------------------------------------------------------------------------------


def test_rtf_text_without_tables_pictures_or_metadata(tmp_path: Path) -> None:
    path = of.make_rtf(tmp_path / "memo.rtf", ["Dear team,", "The ledger ships."])
    text = extract_rtf(path.read_bytes())
    assert "Dear team,\nThe ledger ships.\n" in text
    assert "Café costs 5€ and braces { stay }." in text
    for noise in ("Arial", "FONT_TABLE_NOISE", "Someone", "Handwritten", "89504e47"):
        assert noise not in text
    outcome, chunks = process(path)
    assert (outcome.type, outcome.pages, outcome.encoding) == ("rtf", None, None)
    assert chunks[0].text.startswith("Dear team,")


def test_rtf_over_its_cap_is_too_large(tmp_path: Path) -> None:
    path = of.make_rtf(tmp_path / "memo.rtf", ["word " * 1000])
    assert code_of(path, IngestOptions(max_rtf_bytes=1000)) == "too_large"


# -- pages in chunks, and the extra ----------------------------------------------------------


def test_chunks_carry_the_slide_sheet_and_chapter_number(tmp_path: Path) -> None:
    words = {n: " ".join(f"w{n}x{i}" for i in range(60)) for n in (1, 2, 3)}
    files = {
        "pptx": of.make_pptx(tmp_path / "d.pptx", [of.Slide(f"S{n}", [words[n]]) for n in words]),
        "xlsx": of.make_xlsx(tmp_path / "b.xlsx", {f"S{n}": [[words[n]]] for n in words}),
        "epub": of.make_epub(tmp_path / "e.epub", [(f"S{n}", [words[n]]) for n in words]),
    }
    options = IngestOptions(chunk_size=200, chunk_overlap=0)
    for kind, path in files.items():
        outcome, chunks = process(path, options)
        assert (outcome.type, outcome.pages) == (kind, 3)
        assert {chunk.page for chunk in chunks} == {1, 2, 3}
        for chunk in chunks:
            tokens = [t for t in chunk.text.split() if t.startswith("w")]
            assert all(t.startswith(f"w{chunk.page}x") for t in tokens[:1]), (kind, chunk)


def _deck(p: Path) -> Path:
    return of.make_pptx(p / "d.pptx", [of.Slide("t")])


def _book(p: Path) -> Path:
    return of.make_xlsx(p / "b.xlsx", {"S": [["x"]]})


def _novel(p: Path) -> Path:
    return of.make_epub(p / "e.epub", [("One", ["x"])])


def _memo(p: Path) -> Path:
    return of.make_rtf(p / "m.rtf", ["x"])


@pytest.mark.parametrize(
    ("module", "maker"),
    [("pptx", _deck), ("openpyxl", _book), ("defusedxml", _novel), ("striprtf", _memo)],
)
def test_a_missing_extra_fails_the_document_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, maker: Callable[[Path], Path]
) -> None:
    path = maker(tmp_path)
    # A None entry in sys.modules is how Python marks a module as not importable.
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ProcessingError, match=r"pip install 'ledger\[office\]'") as info:
        process(path)
    assert info.value.code == "missing_extra"
    assert not os.listdir(tmp_path / "spool")


def test_rtf_escape_outside_unicode_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "odd.rtf"
    path.write_bytes(b"{\\rtf1\\ansi Fine so far \\u9999999999? then not.\\par}")
    assert code_of(path) == "corrupt"


def test_the_new_caps_are_checked_batch_options() -> None:
    from ledger.errors import InvalidInput
    from ledger.processors.ingest.config import IngestConfig

    config = IngestConfig.from_options({"max_xlsx_cells": 5000, "max_rtf_bytes": 1024})
    assert (config.ingest.max_xlsx_cells, config.ingest.max_rtf_bytes) == (5000, 1024)
    for bad in ({"max_xlsx_cells": 0}, {"max_rtf_bytes": "big"}):
        with pytest.raises(InvalidInput):
            IngestConfig.from_options(bad)
