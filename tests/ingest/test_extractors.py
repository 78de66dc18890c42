"""Type detection and each extractor, called directly on generated files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.errors import PermanentError
from ledger.processors.ingest.detect import DocType, detect_type
from ledger.processors.ingest.extract_docx import extract_docx, inspect_docx_zip
from ledger.processors.ingest.extract_html import extract_html, flatten_deep_nesting
from ledger.processors.ingest.extract_pdf import extract_pdf
from ledger.processors.ingest.extract_text import decode_text, detect_encoding
from tests.ingest import fixtures as fx

# -- detection -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("a.bin", b"%PDF-1.7\n...", DocType.PDF),
        ("a.txt", b"\n\n  %PDF-1.4 after junk", DocType.PDF),
        ("a", b"<!DOCTYPE html><html><body>x", DocType.HTML),
        ("a.txt", b"  <html><p>x</p></html>", DocType.HTML),
        ("page.htm", b"just text", DocType.HTML),
        ("notes.md", b"# Title\n\ntext", DocType.MARKDOWN),
        ("notes.txt", b"# Title\n\ntext", DocType.TEXT),
        ("noext", b"plain words", DocType.TEXT),
        ("u16.txt", "héllo wörld".encode("utf-16"), DocType.TEXT),
        ("u16.html", "<html><body>x</body></html>".encode("utf-16-le"), DocType.HTML),
        ("nuls.txt", b"some text\x00 with a nul", DocType.TEXT),
    ],
)
def test_detects_by_content_first(name: str, head: bytes, expected: DocType) -> None:
    assert detect_type(name, head) == expected


@pytest.mark.parametrize(
    ("name", "head", "code"),
    [
        ("empty.txt", b"", "empty_file"),
        ("a.txt", b"\x89PNG\r\n\x1a\n\x00\x00", "unsupported_type"),
        ("a.pdf", bytes(range(256)) * 4, "unsupported_type"),
        ("a.pdf", b"plain text that claims to be a pdf", "unsupported_type"),
        ("a.docx", b"plain text that claims to be a docx", "unsupported_type"),
        ("a.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest", "unsupported_type"),
    ],
)
def test_refuses_what_it_cannot_read(name: str, head: bytes, code: str) -> None:
    with pytest.raises(PermanentError) as info:
        detect_type(name, head)
    assert info.value.code == code


def test_detects_docx_and_refuses_other_zips(tmp_path: Path) -> None:
    path = fx.make_docx(tmp_path / "file.bin", ["hello"])
    assert detect_type(str(path), path.read_bytes()[:8192]) == DocType.DOCX
    other = fx.write_raw_zip(tmp_path / "other.zip", [fx.RawEntry("a.txt", b"a")])
    with pytest.raises(PermanentError, match="not a Word"):
        detect_type(str(other), other.read_bytes())


# -- plain text ------------------------------------------------------------------------------


def decode(data: bytes, block: int = 7) -> tuple[str, str]:
    decoded = decode_text(
        (data[i : i + block] for i in range(0, len(data), block)), sample_bytes=64
    )
    return decoded.encoding, "".join(decoded.pieces)


@pytest.mark.parametrize(
    ("data", "encoding", "text"),
    [
        ("Grüße ☃ 𝄞".encode("utf-8-sig"), "utf-8", "Grüße ☃ 𝄞"),
        (b"\xff\xfe" + "Grüße ☃ 𝄞".encode("utf-16-le"), "utf-16-le", "Grüße ☃ 𝄞"),
        (b"\xfe\xff" + "Grüße ☃ 𝄞".encode("utf-16-be"), "utf-16-be", "Grüße ☃ 𝄞"),
        ("plain latin text, no bom".encode("utf-16-le"), "utf-16-le", "plain latin text, no bom"),
        (b"\xff\xfe\x00\x00" + "wide ☃".encode("utf-32-le"), "utf-32-le", "wide ☃"),
        ("Café crème brûlée – “quoted”".encode("cp1252"), "cp1252", "Café crème brûlée – “quoted”"),
    ],
)
def test_decodes_with_the_detected_encoding(data: bytes, encoding: str, text: str) -> None:
    assert decode(data) == (encoding, text)


def test_detects_legacy_cyrillic() -> None:
    text = "Привет, как дела? Это тестовый текст на русском языке. " * 10
    assert detect_encoding(text.encode("cp1251")).encoding == "cp1251"
    assert decode(text.encode("cp1251"), block=1000)[1] == text


def test_invalid_bytes_are_replaced_not_fatal() -> None:
    data = "déjà vu, naïve café. ".encode() * 5 + b"\xff\xfe broken \xc3\x28 end"
    encoding, text = decode(data)
    assert encoding == "utf-8"
    assert text.startswith("déjà vu, naïve café.")
    assert "\ufffd" in text
    assert text.endswith("end")


def test_mixed_utf8_and_latin1_stays_utf8() -> None:
    data = "naïve café ".encode() * 10 + "crème".encode("latin-1")
    encoding, text = decode(data)
    assert encoding == "utf-8"
    assert text.startswith("naïve café naïve")
    assert text.endswith("cr\ufffdme")


def test_nuls_dropped_and_line_ends_normalised_across_blocks() -> None:
    data = b"a\x00b\r\nc\rd\r\n\r\ne\n"
    for block in (1, 2, 3, 100):
        assert decode(data, block) == ("utf-8", "ab\nc\nd\n\ne\n")


def test_a_huge_single_line_is_decoded_in_bounded_pieces() -> None:
    block = b"word " * 200_000  # 1 MB
    blocks = (block for _ in range(50))
    decoded = decode_text(blocks, sample_bytes=65536)
    longest = total = 0
    for piece in decoded.pieces:
        longest = max(longest, len(piece))
        total += len(piece)
    assert total == 50 * len(block)
    assert longest <= len(block) + 4


# -- HTML ------------------------------------------------------------------------------------


def test_html_keeps_content_and_drops_chrome(tmp_path: Path) -> None:
    texts = fx.paragraphs(5, 3)
    path = fx.make_html(tmp_path / "page.html", texts, title="Ledger page")
    html = extract_html(path.read_bytes(), max_depth=256)
    text = "".join(html.pieces)
    assert html.encoding == "utf-8"
    for paragraph in texts:
        assert f"\n\n{paragraph}\n\n" in text
    assert text.startswith("Ledger page\n\nLedger page\n\n")
    assert "key | value\nalpha | 1" in text
    assert "NOISE" not in text


def test_html_blocks_pre_and_breaks() -> None:
    html = (
        b"<body><div>a<div>b</div>c</div><pre>  keep\n    spacing</pre>"
        b"one<br>two<ul><li>x</li><li>y</li></ul><p>many    spaces\n here</p></body>"
    )
    text = "".join(extract_html(html, max_depth=256).pieces)
    assert text == "a\n\nb\n\nc\n\n  keep\n    spacing\n\none\ntwo\n\nx\n\ny\n\nmany spaces here"


def test_deeply_nested_html_reaches_the_parser_flat_and_keeps_its_text(tmp_path: Path) -> None:
    # Unflattened, lexbor needs about 30 s for this page: what it gets is at most
    # ``max_depth`` elements deep (the divs beyond lose their tags, not their text).
    path = fx.make_deep_html(tmp_path / "deep.html", depth=100_000)
    page = path.read_text(encoding="utf-8")
    flat = flatten_deep_nesting(page, 256)
    assert flat.count("<div>") <= 256 and flat.count("</div>") <= 256
    assert "deep inside" in flat and "after the depths" in flat
    text = "".join(extract_html(path.read_bytes(), max_depth=256).pieces)
    assert text == "deep inside\n\nafter the depths"


def test_flattening_removes_only_tags_beyond_the_depth() -> None:
    html = "<div><div><div>x</div></div></div><p>y</p>"
    assert flatten_deep_nesting(html, 5) == html
    flat = flatten_deep_nesting(html, 2)
    assert flat.count("<div>") == 2
    assert flat.count("</div>") == 2
    assert "x" in flat
    assert flatten_deep_nesting("<script>" + "<div>" * 50 + "</script>", 2).count("<div>") == 50


def test_flattening_skips_comments_and_raw_text_and_follows_end_tags() -> None:
    # Tags inside comments and raw-text elements (any case) do not nest.
    hidden = "<!-- <div><div><div> --><SCRIPT type=x><div><div></Script><i>a</i>"
    assert flatten_deep_nesting(hidden, 1) == hidden
    # An end tag closes the nearest matching element and those left open above it.
    assert flatten_deep_nesting("<b><i><u></b><s>x</s>", 1) == "<b>  </b><s>x</s>"
    # A stray end tag closes nothing; void and self-closing elements do not nest.
    assert flatten_deep_nesting("</div><b><br><span/><i>x</i></b>", 1) == (
        "</div><b><br><span/> x </b>"
    )
    # An unterminated comment or tag ends the scan: nothing after it is a tag.
    assert flatten_deep_nesting("<b><!-- <i><u>", 1) == "<b><!-- <i><u>"
    assert flatten_deep_nesting("<b><i x='1'", 1) == "<b><i x='1'"


def test_html_meta_charset_is_honoured() -> None:
    data = '<meta charset="windows-1251"><p>Привет мир</p>'.encode("cp1251")
    html = extract_html(data, max_depth=256)
    assert html.encoding == "cp1251"
    assert "".join(html.pieces) == "Привет мир"


# -- PDF -------------------------------------------------------------------------------------


def test_pdf_pages_in_order_with_numbers(tmp_path: Path) -> None:
    pages = [f"Page {n} says: " + " ".join(fx.sentences(n, 3)) for n in range(1, 5)]
    path = fx.make_pdf(tmp_path / "doc.pdf", pages)
    pdf = extract_pdf(str(path), max_pages=100, max_chars_per_page=100_000)
    assert pdf.pages == 4
    extracted = list(pdf.pieces)
    assert [page for _, page in extracted] == [1, 2, 3, 4]
    for (text, _), expected in zip(extracted, pages, strict=True):
        assert " ".join(text.split()) == expected
        assert text.endswith("\n\n")


@pytest.mark.parametrize(
    ("maker", "code"),
    [
        (
            lambda d: fx.make_encrypted_pdf(d / "e.pdf", fx.make_pdf(d / "s.pdf", ["x"])),
            "encrypted",
        ),
        (
            lambda d: fx.make_truncated(d / "t.pdf", fx.make_pdf(d / "s.pdf", ["x"]), 0.05),
            "corrupt",
        ),
        (lambda d: fx.make_pdf_garbage_body(d / "g.pdf"), "corrupt"),
        (lambda d: fx.make_image_only_pdf(d / "i.pdf"), "no_text"),
    ],
)
def test_pdf_failures(tmp_path: Path, maker, code: str) -> None:  # type: ignore[no-untyped-def]
    path = maker(tmp_path)
    with pytest.raises(PermanentError) as info:
        extract_all(str(path))
    assert info.value.code == code


def extract_all(path: str) -> list[tuple[str, int]]:
    return list(extract_pdf(path, max_pages=100, max_chars_per_page=100_000).pieces)


def test_pdf_caps(tmp_path: Path) -> None:
    path = fx.make_pdf(tmp_path / "doc.pdf", fx.paragraphs(1, 3))
    with pytest.raises(PermanentError, match="pages") as info:
        extract_pdf(str(path), max_pages=2, max_chars_per_page=100_000)
    assert info.value.code == "too_large"
    with pytest.raises(PermanentError, match="characters") as info:
        list(extract_pdf(str(path), max_pages=10, max_chars_per_page=50).pieces)
    assert info.value.code == "too_large"


# -- DOCX ------------------------------------------------------------------------------------

CAPS = {"max_inflated_bytes": 512 * fx.MiB, "max_ratio": 200, "max_entries": 10_000}


def test_docx_paragraphs_and_tables_in_order(tmp_path: Path) -> None:
    texts = fx.paragraphs(9, 3)
    table = [["Name", "Amount"], ["alpha", "10"], ["beta", "20"]]
    path = fx.make_docx(tmp_path / "doc.docx", texts, table)
    inspect_docx_zip(str(path), **CAPS)
    blocks = "".join(extract_docx(str(path))).split("\n\n")
    assert blocks == [
        "Quarterly ledger report",
        texts[0],
        "Name | Amount\nalpha | 10\nbeta | 20",
        texts[1],
        texts[2],
    ]


@pytest.mark.parametrize(
    ("entries", "code"),
    [
        ([fx.zeros_entry("word/media/z.bin", 600 * fx.MiB)], "too_large"),
        ([fx.zeros_entry("word/media/z.bin", 8 * fx.MiB)], "too_large"),  # ratio
        ([fx.RawEntry("../x", b"x")], "unsafe_archive"),
        ([fx.RawEntry("word/../../x", b"x")], "unsafe_archive"),
        ([fx.RawEntry("/abs", b"x")], "unsafe_archive"),
        ([fx.RawEntry("C:\\win.ini", b"x")], "unsafe_archive"),
        ([fx.RawEntry("word/l", b"/etc", symlink=True)], "unsafe_archive"),
        ([fx.RawEntry("word/s", b"x", flags=1)], "encrypted"),
    ],
)
def test_docx_zip_inspection(tmp_path: Path, entries: list[fx.RawEntry], code: str) -> None:
    path = fx.make_docx_variant(tmp_path / "v.docx", entries)
    with pytest.raises(PermanentError) as info:
        inspect_docx_zip(str(path), **CAPS)
    assert info.value.code == code


def test_docx_entry_cap_and_missing_document(tmp_path: Path) -> None:
    path = fx.make_docx_variant(
        tmp_path / "v.docx", [fx.RawEntry(f"m/{i}", b"") for i in range(30)]
    )
    with pytest.raises(PermanentError, match="members") as info:
        inspect_docx_zip(str(path), max_inflated_bytes=2**30, max_ratio=200, max_entries=20)
    assert info.value.code == "too_large"
    bare = fx.write_raw_zip(tmp_path / "bare.docx", [fx.RawEntry("a.txt", b"a")])
    with pytest.raises(PermanentError, match=r"document\.xml") as info:
        inspect_docx_zip(str(bare), **CAPS)
    assert info.value.code == "corrupt"


def test_docx_xml_entities_are_not_expanded(tmp_path: Path) -> None:
    ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE w:document [<!ENTITY a "ha">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
        '<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
        f'<w:document xmlns:w="{ns}"><w:body><w:p><w:r><w:t>safe &d;</w:t></w:r></w:p>'
        "</w:body></w:document>"
    ).encode()
    path = fx.make_docx_variant(tmp_path / "laughs.docx", word__document_xml=laughs)
    inspect_docx_zip(str(path), **CAPS)
    text = "".join(extract_docx(str(path)))
    assert "safe" in text
    assert "haha" not in text
