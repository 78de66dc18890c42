"""Parser speed and text quality: selectolax vs BeautifulSoup, pypdfium2 vs pypdf.

Run: python bench/ingest_parsers.py [--html-dir DIR] [--html-files N]

Generated documents have a known text, so quality is measured against it: recall (share of
the true words found, as a multiset) and precision (share of extracted words that are true
words: navigation, scripts and styles count against). On real HTML pages (``--html-dir``)
there is no ground truth, so the two parsers are compared with each other (Jaccard overlap
of their word sets). Needs the bench extra (beautifulsoup4) and the dev extra (fpdf2, pypdf).
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bs4 import BeautifulSoup
from pypdf import PdfReader

from ledger.processors.ingest.extract_html import extract_html
from ledger.processors.ingest.extract_pdf import extract_pdf
from tests.ingest import fixtures as fx

DROPPED = ["script", "style", "nav", "header", "footer", "aside", "noscript", "template", "head"]
WORD = re.compile(r"\w+")


def words(text: str) -> collections.Counter[str]:
    return collections.Counter(w.lower() for w in WORD.findall(text))


def recall_precision(truth: str, got: str) -> tuple[float, float]:
    t, g = words(truth), words(got)
    common = sum((t & g).values())
    return common / max(sum(t.values()), 1), common / max(sum(g.values()), 1)


def selectolax_text(data: bytes) -> str:
    return "".join(extract_html(data, max_depth=256).pieces)


def selectolax_raw(data: bytes) -> str:
    from selectolax.lexbor import LexborHTMLParser

    parser = LexborHTMLParser(data)
    for node in parser.css(",".join(DROPPED)):
        node.decompose()
    body = parser.body
    return body.text(separator="\n") if body is not None else ""


def bs4_text(parser: str) -> Callable[[bytes], str]:
    def run(data: bytes) -> str:
        soup = BeautifulSoup(data, parser)
        for tag in soup(DROPPED):
            tag.decompose()
        return soup.get_text("\n")

    return run


def timed(fn: Callable[[bytes], str], docs: list[bytes]) -> tuple[float, list[str]]:
    started = time.perf_counter()
    out = [fn(d) for d in docs]
    return time.perf_counter() - started, out


def generated_html(n: int) -> tuple[list[bytes], list[str]]:
    docs, truths = [], []
    for i in range(n):
        paras = fx.paragraphs(500 + i, 5 + i % 40)
        path = Path(tempfile.mkdtemp()) / "p.html"
        fx.make_html(path, paras, title=f"Title {i}")
        docs.append(path.read_bytes())
        # The title appears as <title> and as <h1>; the table's cells are content too.
        truths.append(f"Title {i} Title {i} " + " ".join(paras) + " key value alpha 1")
    return docs, truths


def bench_html(html_dir: str | None, limit: int) -> None:
    print("## HTML\n")
    parsers = {
        "selectolax (lexbor), ledger extractor": selectolax_text,
        "selectolax, parse + body.text() only": selectolax_raw,
        "BeautifulSoup + html.parser": bs4_text("html.parser"),
        "BeautifulSoup + lxml": bs4_text("lxml"),
    }
    docs, truths = generated_html(200)
    size = sum(map(len, docs)) / 2**20
    print(f"Generated: {len(docs)} pages, {size:.1f} MiB, known text\n")
    print("| parser | total s | MiB/s | recall | precision |")
    print("| --- | --- | --- | --- | --- |")
    for name, fn in parsers.items():
        seconds, out = timed(fn, docs)
        rp = [recall_precision(t, o) for t, o in zip(truths, out, strict=True)]
        recall = statistics.mean(r for r, _ in rp)
        precision = statistics.mean(p for _, p in rp)
        print(f"| {name} | {seconds:.2f} | {size / seconds:.1f} | {recall:.3f} | {precision:.3f} |")
    if not html_dir:
        return
    files = sorted(str(p) for p in Path(html_dir).rglob("*.html"))
    random.Random(1).shuffle(files)
    real = [Path(f).read_bytes() for f in files[:limit]]
    size = sum(map(len, real)) / 2**20
    print(f"\nReal pages: {len(real)} files, {size:.1f} MiB (software documentation)\n")
    print("| parser | total s | MiB/s | word-set overlap with selectolax (Jaccard) |")
    print("| --- | --- | --- | --- |")
    reference: list[str] = []
    for name, fn in parsers.items():
        seconds, out = timed(fn, real)
        if not reference:
            reference = out
        overlaps = []
        for a, b in zip(reference, out, strict=True):
            wa, wb = set(words(a)), set(words(b))
            overlaps.append(len(wa & wb) / max(len(wa | wb), 1))
        print(
            f"| {name} | {seconds:.2f} | {size / seconds:.1f} | {statistics.mean(overlaps):.3f} |"
        )


UNICODE = "Grüße aus Köln, ça va très bien; Ελληνικά κείμενα; Русский текст здесь; Łódź żółw"


def unicode_pdf(path: Path, pages: list[str], font: str) -> Path:
    pdf = fx.FPDF()
    pdf.add_font("body", fname=font)
    pdf.set_font("body", size=10)
    for text in pages:
        pdf.add_page()
        with pdf.text_columns(ncols=2, gutter=8) as columns:  # two-column layout
            columns.write(text)
    pdf.output(str(path))
    return path


def bench_pdf(font: str | None) -> None:
    print("\n## PDF\n")
    directory = Path(tempfile.mkdtemp())
    paths, truths = [], []
    for i in range(30):
        pages = [" ".join(fx.paragraphs(1000 * i + p, 6)) for p in range(10)]
        if font and i % 2:
            pages = [f"{UNICODE}. {page} {UNICODE}." for page in pages]
            paths.append(str(unicode_pdf(directory / f"d{i}.pdf", pages, font)))
        else:
            paths.append(str(fx.make_pdf(directory / f"d{i}.pdf", pages)))
        truths.append(" ".join(pages))
    size = sum(os.path.getsize(p) for p in paths) / 2**20
    kind = "half of them two-column with a Unicode TrueType font" if font else "Helvetica"
    print(f"Generated: {len(paths)} PDFs x 10 pages ({kind}), {size:.1f} MiB, known text\n")

    def pdfium(path: str) -> str:
        pdf = extract_pdf(path, max_pages=10_000, max_chars_per_page=10**7)
        return "".join(text for text, _ in pdf.pieces)

    def pypdf(path: str) -> str:
        return "\n\n".join(page.extract_text() or "" for page in PdfReader(path).pages)

    print("| library | total s | pages/s | recall | precision |")
    print("| --- | --- | --- | --- | --- |")
    for name, fn in {"pypdfium2": pdfium, "pypdf": pypdf}.items():
        started = time.perf_counter()
        out = [fn(p) for p in paths]
        seconds = time.perf_counter() - started
        rp = [recall_precision(t, o) for t, o in zip(truths, out, strict=True)]
        recall = statistics.mean(r for r, _ in rp)
        precision = statistics.mean(p for _, p in rp)
        print(f"| {name} | {seconds:.2f} | {300 / seconds:.0f} | {recall:.3f} | {precision:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--html-dir")
    parser.add_argument("--html-files", type=int, default=300)
    parser.add_argument("--font", help="a TrueType font for the Unicode two-column PDFs")
    args = parser.parse_args()
    bench_html(args.html_dir, args.html_files)
    bench_pdf(args.font)


if __name__ == "__main__":
    main()
