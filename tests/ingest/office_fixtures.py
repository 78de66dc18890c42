"""Generators of real PPTX, XLSX, EPUB, ODT and RTF files, good and hostile, for the tests.

PPTX and XLSX are written by python-pptx and openpyxl; EPUB and ODT are assembled with
zipfile from their specifications' minimal parts; RTF is written by hand. Nothing binary is
committed: every file is made into a directory the caller owns.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import openpyxl
import pptx
from pptx.util import Inches

from tests.ingest.fixtures import MiB, RawEntry, write_raw_zip, zeros_entry

LAUGHS_DTD = (
    '<!DOCTYPE lolz [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
    '<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">'
    '<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">'
    '<!ENTITY i "&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;">]>'
)  # &i; is 10^8 "ha": 200 MB if expanded


def with_laughs(xml: bytes, target: bytes) -> bytes:
    """``xml`` with the billion-laughs DTD in its prolog and ``target`` (a text inside it)
    replaced by ``safe &i;``: expanded, that one reference is 200 MB."""
    text = xml.decode()
    if text.startswith("<?xml"):
        end = text.index("?>") + 2
        text = text[:end] + LAUGHS_DTD + text[end:]
    else:
        text = LAUGHS_DTD + text
    assert target.decode() in text
    return text.replace(target.decode(), "safe &i;", 1).encode()


# -- PPTX ------------------------------------------------------------------------------------


class Slide:
    def __init__(
        self,
        title: str,
        body: Sequence[str] = (),
        *,
        notes: str = "",
        table: Sequence[Sequence[str]] = (),
    ) -> None:
        self.title, self.body, self.notes, self.table = title, body, notes, table


def make_pptx(path: Path, slides: Sequence[Slide]) -> Path:
    """A presentation with a title-and-content slide per ``Slide``; a table, when given,
    is a separate shape below the body, and notes go to the notes page."""
    presentation = pptx.Presentation()
    layout = presentation.slide_layouts[1]  # title and content
    for spec in slides:
        slide = presentation.slides.add_slide(layout)
        slide.shapes.title.text = spec.title
        body = slide.placeholders[1].text_frame
        for index, line in enumerate(spec.body):
            paragraph = body.paragraphs[0] if index == 0 else body.add_paragraph()
            paragraph.text = line
        if spec.table:
            rows, cols = len(spec.table), len(spec.table[0])
            shape = slide.shapes.add_table(rows, cols, Inches(1), Inches(5), Inches(6), Inches(1))
            for r, row in enumerate(spec.table):
                for c, value in enumerate(row):
                    shape.table.cell(r, c).text = value
        if spec.notes:
            slide.notes_slide.notes_text_frame.text = spec.notes
    presentation.save(str(path))
    return path


# -- XLSX ------------------------------------------------------------------------------------


def make_xlsx(
    path: Path,
    sheets: Mapping[str, Sequence[Sequence[object]]],
    *,
    cached: Mapping[str, str] | None = None,
) -> Path:
    """A workbook with one sheet per entry, rows as given. Strings starting with ``=`` are
    formulas; openpyxl stores none of their values, so ``cached`` ({"A1+B1": "42"}) writes
    the value Excel would have cached into the first sheet's XML."""
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(list(row))
    workbook.save(str(path))
    if cached:
        replace = {}
        data = read_member(path, "xl/worksheets/sheet1.xml").decode()
        for formula, value in cached.items():
            data = data.replace(f"<f>{formula}</f><v></v>", f"<f>{formula}</f><v>{value}</v>")
            data = data.replace(f"<f>{formula}</f><v />", f"<f>{formula}</f><v>{value}</v>")
        replace["xl/worksheets/sheet1.xml"] = data.encode()
        rebuild_zip(path, path, replace=replace)
    return path


def make_sparse_giant_xlsx(path: Path) -> Path:
    """A sheet that declares A1:XFD1048576 (17 billion cells) and holds three."""
    make_xlsx(path, {"Huge": [["corner", "value"]]})
    data = read_member(path, "xl/worksheets/sheet1.xml").decode()
    start = data.index("<dimension")
    end = data.index("/>", start) + 2
    data = data[:start] + '<dimension ref="A1:XFD1048576"/>' + data[end:]
    data = data.replace(
        "</sheetData>",
        '<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>far corner</t></is></c>'
        "</row></sheetData>",
    )
    return rebuild_zip(path, path, replace={"xl/worksheets/sheet1.xml": data.encode()})


def make_wide_rows_xlsx(path: Path, rows: int = 2000) -> Path:
    """Rows that each hold one cell in the last column, XFD: every row spans 16,384 cells."""
    make_xlsx(path, {"Wide": [["start"]]})
    data = read_member(path, "xl/worksheets/sheet1.xml").decode()
    cells = "".join(f'<row r="{r}"><c r="XFD{r}"><v>{r}</v></c></row>' for r in range(2, rows + 2))
    data = data.replace("</sheetData>", cells + "</sheetData>")
    return rebuild_zip(path, path, replace={"xl/worksheets/sheet1.xml": data.encode()})


# -- EPUB ------------------------------------------------------------------------------------

_CONTAINER = (
    '<?xml version="1.0"?><container version="1.0" '
    'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
    '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
    "</rootfiles></container>"
)


def chapter_xhtml(title: str, paragraphs_: Sequence[str], *, prolog: str = "") -> str:
    body = "".join(f"<p>{text}</p>" for text in paragraphs_)
    return (
        f'<?xml version="1.0" encoding="utf-8"?>{prolog}'
        '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Book</title></head>'
        f"<body><h1>{title}</h1>{body}</body></html>"
    )


def epub_members(
    chapters: Sequence[tuple[str, Sequence[str]]], *, spine: Sequence[int] | None = None
) -> dict[str, bytes]:
    """The members of an EPUB 3 whose chapters are files ``chNN.xhtml`` in the order given
    and read in the order ``spine`` (indexes into ``chapters``; default: as given)."""
    order = list(spine) if spine is not None else list(range(len(chapters)))
    items = "".join(
        f'<item id="ch{n}" href="text/ch{n:02d}.xhtml" media-type="application/xhtml+xml"/>'
        for n in range(len(chapters))
    )
    refs = "".join(f'<itemref idref="ch{n}"/>' for n in order)
    opf = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" '
        'unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
        '<dc:identifier id="id">urn:uuid:1</dc:identifier><dc:title>Book</dc:title>'
        "<dc:language>en</dc:language></metadata>"
        f'<manifest><item id="css" href="style.css" media-type="text/css"/>{items}</manifest>'
        f"<spine>{refs}</spine></package>"
    )
    members = {
        "mimetype": b"application/epub+zip",
        "META-INF/container.xml": _CONTAINER.encode(),
        "OEBPS/content.opf": opf.encode(),
        "OEBPS/style.css": b"p { margin: 0 }",
    }
    for n, (title, paragraphs_) in enumerate(chapters):
        members[f"OEBPS/text/ch{n:02d}.xhtml"] = chapter_xhtml(title, paragraphs_).encode()
    return members


def write_zip(path: Path, members: Mapping[str, bytes]) -> Path:
    """A zip with ``mimetype`` (if any) first and stored, the rest deflated, as EPUB and
    OpenDocument require."""
    with zipfile.ZipFile(path, "w") as archive:
        if "mimetype" in members:
            archive.writestr("mimetype", members["mimetype"], zipfile.ZIP_STORED)
        for name, data in members.items():
            if name != "mimetype":
                archive.writestr(name, data, zipfile.ZIP_DEFLATED)
    return path


def make_epub(
    path: Path,
    chapters: Sequence[tuple[str, Sequence[str]]],
    *,
    spine: Sequence[int] | None = None,
) -> Path:
    return write_zip(path, epub_members(chapters, spine=spine))


def drm_encryption_xml(uri: str, algorithm: str) -> bytes:
    return (
        '<?xml version="1.0"?><encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container"'
        ' xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
        f'<enc:EncryptionMethod Algorithm="{algorithm}"/><enc:CipherData>'
        f'<enc:CipherReference URI="{uri}"/></enc:CipherData></enc:EncryptedData></encryption>'
    ).encode()


# -- ODT -------------------------------------------------------------------------------------

ODT_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"'
)


def odt_content(body: str, *, prolog: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{prolog}<office:document-content {ODT_NS} '
        f'office:version="1.3"><office:body><office:text>{body}</office:text></office:body>'
        "</office:document-content>"
    ).encode()


def odt_members(content: bytes, *, mimetype: str = "application/vnd.oasis.opendocument.text"
                ) -> dict[str, bytes]:  # fmt: skip
    manifest = (
        '<?xml version="1.0"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        'manifest:version="1.3"><manifest:file-entry manifest:full-path="/" '
        f'manifest:media-type="{mimetype}"/><manifest:file-entry '
        'manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>'
    )
    return {
        "mimetype": mimetype.encode(),
        "META-INF/manifest.xml": manifest.encode(),
        "content.xml": content,
    }


def make_odt(path: Path, body: str) -> Path:
    return write_zip(path, odt_members(odt_content(body)))


# -- RTF -------------------------------------------------------------------------------------


def make_rtf(path: Path, paragraphs_: Sequence[str]) -> Path:
    """A Word-like RTF: font and colour tables, an info group, a picture, escapes."""
    body = "".join(f"\\pard {text}\\par\n" for text in paragraphs_)
    path.write_bytes(
        (
            "{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0\\fswiss\\fcharset0 Arial;}}\n"
            "{\\colortbl;\\red255\\green0\\blue0;}\n"
            "{\\info{\\title FONT_TABLE_NOISE}{\\author Someone}}\n"
            "{\\*\\generator Handwritten 1.0;}\n"
            "{\\pict\\pngblip\\picw10\\pich10 89504e470d0a1a0a}\n"
            f"\\f0\\fs24 {body}"
            "Caf\\'e9 costs 5\\u8364? and braces \\{ stay \\}.\\par\n}"
        ).encode("ascii")
    )
    return path


# -- hostile zips ----------------------------------------------------------------------------


def read_member(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(name)


def rebuild_zip(
    source: Path,
    target: Path,
    *,
    replace: Mapping[str, bytes] | None = None,
    extra: Sequence[RawEntry] = (),
) -> Path:
    """``source``'s members, some replaced, plus ``extra`` raw members, written to
    ``target`` by hand (names, sizes and flags as given)."""
    with zipfile.ZipFile(source) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    replace = replace or {}
    entries = [RawEntry(name, replace.get(name, data)) for name, data in members]
    return write_raw_zip(target, [*entries, *extra])


def lying_member_of(source: Path, target: Path, name: str, inflated: int = 64 * MiB) -> Path:
    """``source`` with member ``name`` declared as 2,000 bytes but inflating to ``inflated``
    zero bytes: the directory looks harmless, the data is a bomb."""
    bomb = zeros_entry(name, inflated)
    liar = RawEntry(name, b"", compressed=bomb.compressed, declared_size=2000, crc=bomb.crc)
    with zipfile.ZipFile(source) as archive:
        members = [(i.filename, archive.read(i)) for i in archive.infolist() if i.filename != name]
    return write_raw_zip(target, [*(RawEntry(n, d) for n, d in members), liar])


def zip_bomb_of(source: Path, target: Path) -> Path:
    """``source`` with an extra member that inflates to 1 GiB from about 1 MiB."""
    return rebuild_zip(source, target, extra=[zeros_entry("media/bomb.bin", 1024 * MiB)])


def truncated(source: Path, target: Path, keep: float = 0.6) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    return target
