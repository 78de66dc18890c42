"""Generators of real test documents, good and bad. Nothing binary is committed: every file
is made here, deterministically, into a directory the caller owns (a tmp_path).

``make_good_corpus`` and ``make_bad_corpus`` are the entry points other test suites reuse.
"""

from __future__ import annotations

import io
import os
import random
import struct
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import docx
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

MiB = 2**20

WORDS = [
    "ledger",
    "batch",
    "document",
    "chunk",
    "page",
    "worker",
    "lease",
    "retry",
    "extract",
    "parse",
    "token",
    "index",
    "search",
    "archive",
    "record",
    "stream",
    "offset",
    "memory",
    "limit",
    "timeout",
    "process",
    "queue",
    "resume",
    "checkpoint",
    "alpha",
    "beta",
    "gamma",
    "delta",
    "river",
    "mountain",
    "forest",
    "ocean",
    "planet",
    "garden",
    "window",
    "library",
]


def sentences(seed: int, count: int) -> list[str]:
    """``count`` deterministic ASCII sentences."""
    rng = random.Random(seed)
    result = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 16))]
        result.append(" ".join(words).capitalize() + ".")
    return result


def paragraphs(seed: int, count: int, per_paragraph: int = 4) -> list[str]:
    all_sentences = sentences(seed, count * per_paragraph)
    return [
        " ".join(all_sentences[i : i + per_paragraph])
        for i in range(0, len(all_sentences), per_paragraph)
    ]


# -- PDF -------------------------------------------------------------------------------------


def make_pdf(path: Path, pages: Sequence[str]) -> Path:
    """A PDF with one page per string, in Helvetica (so ASCII or Latin-1 text only)."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    pdf.output(str(path))
    return path


def make_image_only_pdf(path: Path, pages: int = 2) -> Path:
    """Pages with drawings and no text at all (what a scan without OCR looks like)."""
    pdf = FPDF()
    for index in range(pages):
        pdf.add_page()
        pdf.set_fill_color(40 * index, 100, 150)
        pdf.rect(20, 20, 120, 80, style="F")
        pdf.line(10, 150, 200, 280)
    pdf.output(str(path))
    return path


def make_encrypted_pdf(path: Path, source: Path, user_password: str = "secret") -> Path:
    """``source`` encrypted with pypdf (RC4-128). An empty user password opens without one."""
    writer = PdfWriter(clone_from=PdfReader(str(source)))
    writer.encrypt(user_password=user_password, owner_password="owner-pw", algorithm="RC4-128")
    with open(path, "wb") as file:
        writer.write(file)
    return path


def make_truncated(path: Path, source: Path, keep: float) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def make_pdf_bomb(path: Path, inflated_bytes: int = 2048 * MiB) -> Path:
    """A one-page PDF whose content stream inflates to ``inflated_bytes`` of spaces.

    Built from one compressed block repeated after full flushes (identical output each time),
    so a 2 GiB bomb is a 2 MiB file made in well under a second.
    """
    block = b" " * MiB
    compressor = zlib.compressobj(9, zlib.DEFLATED, 15)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeat = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    count = inflated_bytes // MiB
    adler = 1
    for _ in range(count):
        adler = zlib.adler32(block, adler)
    tail = compressor.flush(zlib.Z_FINISH)[:-4] + struct.pack(">I", adler)
    stream = first + repeat * (count - 1) + tail
    return _write_pdf(
        path,
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream)
            + stream
            + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ],
    )


def make_pdf_garbage_body(path: Path, seed: int = 7) -> Path:
    """A PDF header followed by random bytes: recognisably PDF, hopelessly broken."""
    path.write_bytes(b"%PDF-1.7\n" + random.Random(seed).randbytes(20_000))
    return path


def _write_pdf(path: Path, objects: list[bytes]) -> Path:
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    path.write_bytes(bytes(out))
    return path


# -- DOCX and zips ---------------------------------------------------------------------------


def make_docx(
    path: Path, paragraphs_: Sequence[str], table: Sequence[Sequence[str]] | None = None
) -> Path:
    """A DOCX with a heading, the paragraphs, and a table after the first paragraph."""
    document = docx.Document()
    document.add_heading("Quarterly ledger report", level=1)
    for index, text in enumerate(paragraphs_):
        document.add_paragraph(text)
        if index == 0 and table:
            grid = document.add_table(rows=len(table), cols=len(table[0]))
            for r, row in enumerate(table):
                for c, value in enumerate(row):
                    grid.cell(r, c).text = value
    document.save(str(path))
    return path


def docx_members(seed: int = 1) -> list[tuple[str, bytes]]:
    """The members of a small real DOCX, to rebuild hostile variants from."""
    buffer = io.BytesIO()
    document = docx.Document()
    for text in paragraphs(seed, 2):
        document.add_paragraph(text)
    document.save(buffer)
    with zipfile.ZipFile(buffer) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


class RawEntry:
    """A zip member written exactly as described, lies included."""

    def __init__(
        self,
        name: str,
        data: bytes,
        *,
        compressed: bytes | None = None,
        declared_size: int | None = None,
        crc: int | None = None,
        flags: int = 0,
        symlink: bool = False,
    ) -> None:
        self.name = name.encode()
        self.compressed = compressed if compressed is not None else _deflate(data)
        self.size = declared_size if declared_size is not None else len(data)
        self.crc = crc if crc is not None else zlib.crc32(data)
        self.flags = flags
        self.symlink = symlink


def write_raw_zip(path: Path, entries: Sequence[RawEntry]) -> Path:
    """A zip built by hand, so names, sizes and flags are not sanitised on the way."""
    out = bytearray()
    central = bytearray()
    for entry in entries:
        offset = len(out)
        out += struct.pack(
            "<4s5H3L2H", b"PK\x03\x04", 20, entry.flags, 8, 0, 0x21,
            entry.crc, len(entry.compressed), entry.size, len(entry.name), 0,
        )  # fmt: skip
        out += entry.name + entry.compressed
        made_by = (3 << 8) | 20 if entry.symlink else 20
        external = (0o120777 << 16) if entry.symlink else 0
        central += struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", made_by, 20, entry.flags, 8, 0, 0x21,
            entry.crc, len(entry.compressed), entry.size, len(entry.name), 0, 0, 0, 0,
            external, offset,
        )  # fmt: skip
        central += entry.name
    directory_offset = len(out)
    out += central
    out += struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central),
        directory_offset, 0,
    )  # fmt: skip
    path.write_bytes(bytes(out))
    return path


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def zeros_entry(name: str, size: int) -> RawEntry:
    """A member that inflates to ``size`` zero bytes, made quickly (see make_pdf_bomb)."""
    block = b"\x00" * MiB
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeat = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    count = size // MiB
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(block, crc)
    compressed = first + repeat * (count - 1) + compressor.flush(zlib.Z_FINISH)
    return RawEntry(name, b"", compressed=compressed, declared_size=count * MiB, crc=crc)


def make_docx_variant(path: Path, extra: Sequence[RawEntry] = (), **replace: bytes) -> Path:
    """A small real DOCX rebuilt by hand, with ``extra`` members added and members replaced
    (``replace`` keys are member names with / replaced by __ and . by _)."""
    entries = []
    for name, data in docx_members():
        key = name.replace("/", "__").replace(".", "_")
        entries.append(RawEntry(name, replace.get(key, data)))
    return write_raw_zip(path, [*entries, *extra])


# -- text and HTML ---------------------------------------------------------------------------


def make_html(path: Path, body_paragraphs: Sequence[str], *, title: str = "A page") -> Path:
    noise = (
        "<script>var tracking = 'SCRIPT_NOISE';</script><style>.x{color:red} STYLE_NOISE</style>"
    )
    body = "\n".join(f"<p>{text}</p>" for text in body_paragraphs)
    html = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>{noise}</head>"
        "<body><nav><a href='/'>NAV_NOISE home</a></nav><header>HEADER_NOISE</header>"
        f"<main><h1>{title}</h1>{body}<table><tr><th>key</th><th>value</th></tr>"
        "<tr><td>alpha</td><td>1</td></tr></table></main>"
        "<aside>ASIDE_NOISE</aside><footer>FOOTER_NOISE</footer>"
        "<noscript>NOSCRIPT_NOISE</noscript><template>TEMPLATE_NOISE</template></body></html>"
    )
    path.write_text(html, encoding="utf-8")
    return path


def make_deep_html(path: Path, depth: int = 100_000) -> Path:
    path.write_text(
        "<html><body>" + "<div>" * depth + "deep inside" + "</div>" * depth
        + "<p>after the depths</p></body></html>",
        encoding="utf-8",
    )  # fmt: skip
    return path


def make_markdown(path: Path, seed: int = 3) -> Path:
    parts = ["# Ledger notes", ""]
    for index, text in enumerate(paragraphs(seed, 6)):
        parts += [f"## Section {index + 1}", "", text, "", f"- item {index}", ""]
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def make_single_line(path: Path, size: int = 50 * MiB) -> Path:
    """``size`` bytes of words and no newline at all, written in blocks."""
    unit = (" ".join(WORDS) + " ").encode()
    with open(path, "wb") as file:
        written = 0
        block = unit * (MiB // len(unit))
        while written + len(block) <= size:
            file.write(block)
            written += len(block)
        file.write(unit[:1] * (size - written))
    return path


# -- the corpora -----------------------------------------------------------------------------


def make_good_corpus(directory: Path, n: int) -> dict[str, str]:
    """``n`` valid documents of all types; maps each path to its expected type."""
    directory.mkdir(parents=True, exist_ok=True)
    result: dict[str, str] = {}
    for index in range(n):
        kind = ("pdf", "docx", "html", "markdown", "text")[index % 5]
        texts = paragraphs(1000 + index, 3 + index % 4)
        if kind == "pdf":
            path = make_pdf(directory / f"good_{index:04d}.pdf", texts)
        elif kind == "docx":
            path = make_docx(directory / f"good_{index:04d}.docx", texts, [["k", "v"], ["a", "1"]])
        elif kind == "html":
            path = make_html(directory / f"good_{index:04d}.html", texts)
        elif kind == "markdown":
            path = make_markdown(directory / f"good_{index:04d}.md", seed=index)
        else:
            path = directory / f"good_{index:04d}.txt"
            path.write_text("\n\n".join(texts), encoding="utf-8")
        result[str(path)] = kind
    return result


def excluded_type(path: str) -> str | None:
    """The reason the ingest processor skips this file with when it is not a document (by
    its name, or by first bytes naming an image or archive); None for a document. The
    extraction pipeline itself still fails such files as ``unsupported_type``."""
    from ledger.processors.ingest.detect import HEAD_BYTES
    from ledger.processors.ingest.selection import (
        excluded_by_content,
        excluded_by_name,
        excluded_reason,
    )

    what = excluded_by_name(path)
    if what is None and os.path.isfile(path):
        with open(path, "rb") as file:
            what = excluded_by_content(file.read(HEAD_BYTES))
    return excluded_reason(what) if what is not None else None


def make_bad_corpus(directory: Path, *, include_huge: bool = True) -> dict[str, str | None]:
    """Hostile, broken and awkward files; maps each path to the error code ``process_file``
    must raise (run in a ProcessPool with a memory limit of 1 GiB or less), or None when
    it must succeed despite the awkwardness."""
    d = directory
    d.mkdir(parents=True, exist_ok=True)
    cases: dict[str, str | None] = {}

    def add(path: Path, code: str | None) -> None:
        cases[str(path)] = code

    good_pdf = make_pdf(d / "source.pdf", paragraphs(11, 4))
    cases.pop(str(good_pdf), None)
    rng = random.Random(42)

    # Empty, missing, not a file.
    (d / "empty.txt").write_bytes(b"")
    add(d / "empty.txt", "empty_file")
    add(d / "missing.txt", "source_missing")
    (d / "a_directory.txt").mkdir(exist_ok=True)
    add(d / "a_directory.txt", "unreadable")

    # PDF.
    add(make_encrypted_pdf(d / "encrypted.pdf", good_pdf), "encrypted")
    add(make_encrypted_pdf(d / "owner_password_only.pdf", good_pdf, user_password=""), None)
    add(make_truncated(d / "truncated_head.pdf", good_pdf, 0.05), "corrupt")
    (d / "random.pdf").write_bytes(rng.randbytes(50_000))
    add(d / "random.pdf", "unsupported_type")
    add(make_pdf_garbage_body(d / "garbage_body.pdf"), "corrupt")
    add(make_image_only_pdf(d / "image_only.pdf"), "no_text")
    add(make_pdf_bomb(d / "bomb.pdf"), "too_large")
    (d / "text_named.pdf").write_text("this is plain text, not a PDF\n" * 20)
    add(d / "text_named.pdf", "unsupported_type")

    # DOCX and zips.
    add(make_docx_variant(d / "zip_bomb.docx", [zeros_entry("word/media/z.bin", 1024 * MiB)]),
        "too_large")  # fmt: skip
    add(make_docx_variant(d / "high_ratio.docx", [zeros_entry("word/media/r.bin", 64 * MiB)]),
        "too_large")  # fmt: skip
    add(make_docx_variant(d / "traversal.docx", [RawEntry("../../evil.txt", b"x")]),
        "unsafe_archive")  # fmt: skip
    add(make_docx_variant(d / "absolute.docx", [RawEntry("/etc/evil.txt", b"x")]),
        "unsafe_archive")  # fmt: skip
    link = RawEntry("word/link", b"/etc/passwd", symlink=True)
    add(make_docx_variant(d / "symlink.docx", [link]), "unsafe_archive")
    add(make_docx_variant(d / "many_entries.docx",
                          [RawEntry(f"word/m/{i}.xml", b"<a/>") for i in range(10_001)]),
        "too_large")  # fmt: skip
    add(make_docx_variant(d / "encrypted_member.docx", [RawEntry("word/x.bin", b"x", flags=1)]),
        "encrypted")  # fmt: skip
    add(make_docx_variant(d / "bad_xml.docx", word__document_xml=b"<w:document><w:body>"),
        "corrupt")  # fmt: skip
    members = dict(docx_members())
    xml = members["word/document.xml"]
    lying = RawEntry("word/document.xml", xml, declared_size=len(xml) // 2)
    entries = [RawEntry(n, b) for n, b in members.items() if n != "word/document.xml"]
    add(write_raw_zip(d / "lying_size.docx", [*entries, lying]), "corrupt")
    add(make_truncated(d / "truncated.docx", make_docx(d / "whole.docx", paragraphs(5, 30)), 0.5),
        "corrupt")  # fmt: skip
    cases.pop(str(d / "whole.docx"), None)
    write_raw_zip(d / "no_document.docx", [RawEntry("hello.txt", b"hello")])
    add(d / "no_document.docx", "unsupported_type")
    (d / "text_named.docx").write_text("not a zip at all\n")
    add(d / "text_named.docx", "unsupported_type")

    # Foreign and binary formats.
    (d / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.randbytes(2000))
    add(d / "image.txt", "unsupported_type")
    (d / "archive.gz").write_bytes(b"\x1f\x8b\x08\x00" + rng.randbytes(2000))
    add(d / "archive.gz", "unsupported_type")
    (d / "legacy.doc").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + rng.randbytes(4000))
    add(d / "legacy.doc", "unsupported_type")
    (d / "program").write_bytes(b"\x7fELF\x02\x01\x01" + rng.randbytes(4000))
    add(d / "program", "unsupported_type")
    (d / "random.dat").write_bytes(rng.randbytes(10_000))
    add(d / "random.dat", "unsupported_type")
    (d / "only_nuls.txt").write_bytes(b"\x00" * 5000)
    add(d / "only_nuls.txt", "unsupported_type")

    # Text: nothing to index, and awkward but valid.
    (d / "whitespace.txt").write_text(" \n\t\n   \r\n" * 100)
    add(d / "whitespace.txt", "no_text")
    (d / "scripts_only.html").write_text(
        "<html><head><script>var a = 1;</script></head><body><nav>menu</nav>"
        "<script>alert(1)</script></body></html>"
    )
    add(d / "scripts_only.html", "no_text")
    text = "\n\n".join(paragraphs(21, 5))
    (d / "utf16le_bom.txt").write_bytes(b"\xff\xfe" + ("Grüße, ☃ " + text).encode("utf-16-le"))
    add(d / "utf16le_bom.txt", None)
    (d / "utf16be_bom.txt").write_bytes(b"\xfe\xff" + ("Grüße, ☃ " + text).encode("utf-16-be"))
    add(d / "utf16be_bom.txt", None)
    (d / "cp1252.txt").write_bytes(("Café crème brûlée – “quoted” " + text).encode("cp1252"))
    add(d / "cp1252.txt", None)
    (d / "cp1251.txt").write_bytes(
        ("Привет, как дела? Это тестовый текст на русском языке. " * 20).encode("cp1251")
    )
    add(d / "cp1251.txt", None)
    (d / "invalid_utf8.txt").write_bytes(text.encode() + b"\xff\xfe\xc3\x28 broken \xe2\x82 end")
    add(d / "invalid_utf8.txt", None)
    (d / "mixed_encodings.txt").write_bytes(
        "naïve café déjà vu ".encode() * 20 + "crème brûlée ".encode("latin-1") * 3
    )
    add(d / "mixed_encodings.txt", None)
    (d / "nul_bytes.txt").write_bytes(text.encode().replace(b" ", b" \x00", 30))
    add(d / "nul_bytes.txt", None)
    (d / "crlf.md").write_bytes(b"# Title\r\n\r\nSome text\r\nmore text\r" * 50)
    add(d / "crlf.md", None)
    add(make_deep_html(d / "deep.html"), None)
    (d / "cp1251_meta.html").write_bytes(
        '<html><head><meta charset="windows-1251"></head><body><p>Привет мир</p></body></html>'
        .encode("cp1251")
    )  # fmt: skip
    add(d / "cp1251_meta.html", None)
    if include_huge:
        add(make_single_line(d / "single_line_50mb.txt"), None)
    os.unlink(good_pdf)
    return cases
