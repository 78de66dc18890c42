"""Extraction rate of each document format ingest reads, on generated files of known text.

Run: python bench/ingest_formats.py [--files N] [--scale S]

For every format the same paragraphs of known text are written as a DOCX (the reference),
a PPTX (a slide per four paragraphs, notes on every other one), an XLSX (a row per
sentence, three columns), an EPUB (a chapter per twenty paragraphs), an ODT (paragraphs
with a table) and an RTF. Each file goes through ``process_file`` in this process, as in a
pool child, and is timed in CPU seconds of this process (``time.process_time``: the
machine may be shared, and a pool child is one process on one core): the whole call, and
the share of it that ``IngestOutcome.timings`` puts in ``extract`` (detection, zip
inspection, parsing, decoding; not hashing, chunking or spooling). Recall is the share of
the known words found.
Needs the dev extra (python-docx, python-pptx, openpyxl, striprtf, defusedxml).
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.processors.ingest import IngestOptions, IngestOutcome, iter_spool, process_file
from tests.ingest import fixtures as fx
from tests.ingest import office_fixtures as of

WORD = re.compile(r"\w+")
Maker = Callable[[Path, Sequence[str]], Path]


def _pptx(path: Path, paras: Sequence[str]) -> Path:
    slides = [
        of.Slide(f"Slide {n}", paras[i : i + 4], notes=paras[i] if n % 2 else "")
        for n, i in enumerate(range(0, len(paras), 4))
    ]
    return of.make_pptx(path, slides)


def _xlsx(path: Path, paras: Sequence[str]) -> Path:
    sentences = [s for p in paras for s in p.split(". ")]
    return of.make_xlsx(path, {"Data": [[n, s, len(s)] for n, s in enumerate(sentences)]})


def _epub(path: Path, paras: Sequence[str]) -> Path:
    chapters = [(f"Chapter {n}", paras[i : i + 20]) for n, i in enumerate(range(0, len(paras), 20))]
    return of.make_epub(path, chapters)


def _odt(path: Path, paras: Sequence[str]) -> Path:
    body = "".join(f"<text:p>{p}</text:p>" for p in paras)
    table = "".join(
        f"<table:table-row><table:table-cell><text:p>{n}</text:p></table:table-cell>"
        f"<table:table-cell><text:p>{p[:40]}</text:p></table:table-cell></table:table-row>"
        for n, p in enumerate(paras[:50])
    )
    return of.make_odt(path, f"{body}<table:table>{table}</table:table>")


MAKERS: dict[str, Maker] = {
    "docx": lambda path, paras: fx.make_docx(path, paras),
    "pptx": _pptx,
    "xlsx": _xlsx,
    "epub": _epub,
    "odt": _odt,
    "rtf": lambda path, paras: of.make_rtf(path, paras),
}


def _words(text: str) -> collections.Counter[str]:
    return collections.Counter(w.lower() for w in WORD.findall(text))


def _run(path: Path, spool: Path) -> tuple[IngestOutcome, float, str]:
    """The outcome, the CPU seconds of ``process_file`` and the text of the chunks."""
    started = time.process_time()
    outcome = process_file(
        str(path),
        expected_size=None,
        expected_mtime_ns=None,
        expected_sha256=None,
        options=IngestOptions(chunk_overlap=0),
        spool_dir=str(spool),
    )
    cpu = time.process_time() - started
    text = " ".join(c.text for batch in iter_spool(outcome.spool_path, 1000) for c in batch)
    Path(outcome.spool_path).unlink()
    return outcome, cpu, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20, help="files per format")
    parser.add_argument("--scale", type=int, default=200, help="paragraphs per file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ingest-formats-"))
    spool = work / "spool"
    spool.mkdir()
    texts = [fx.paragraphs(7000 + n, args.scale) for n in range(args.files)]
    print(f"{args.files} files per format, {args.scale} paragraphs each\n")
    print("| format | MiB | text chars | CPU s | extract share | files/s | MiB/s | M chars/s "
          "| recall |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind, make in MAKERS.items():
        paths = [make(work / f"{kind}-{n}.{kind}", paras) for n, paras in enumerate(texts)]
        size = sum(p.stat().st_size for p in paths) / 2**20
        seconds = chars = extract = wall = 0.0
        recalls = []
        for path, paras in zip(paths, texts, strict=True):
            outcome, cpu, text = _run(path, spool)
            seconds += cpu
            timings = outcome.timings
            extract += timings.extract
            wall += timings.read + timings.extract + timings.chunk + timings.spool
            chars += outcome.characters
            truth, got = _words(" ".join(paras)), _words(text)
            recalls.append(sum((truth & got).values()) / sum(truth.values()))
        print(
            f"| {kind} | {size:.1f} | {chars:,.0f} | {seconds:.2f} | {extract / wall:.0%} "
            f"| {len(paths) / seconds:.1f} "
            f"| {size / seconds:.1f} | {chars / seconds / 1e6:.2f} "
            f"| {sum(recalls) / len(recalls):.3f} |"
        )
    _big_sheets(work, spool)


def _big_sheets(work: Path, spool: Path) -> None:
    """A dense sheet of a million cells, and one declaring the whole grid with three."""
    dense = of.make_xlsx(
        work / "dense.xlsx", {"Dense": [[r * 10 + c for c in range(10)] for r in range(100_000)]}
    )
    sparse = of.make_sparse_giant_xlsx(work / "sparse.xlsx")
    print("\n| sheet | MiB | CPU s | cells/s |")
    print("| --- | ---: | ---: | ---: |")
    for name, path, cells in [
        ("100,000 rows x 10 numbers", dense, 1_000_000),
        ("declares A1:XFD1048576, holds 3 cells", sparse, 3),
    ]:
        _outcome, seconds, _text = _run(path, spool)
        size = path.stat().st_size / 2**20
        print(f"| {name} | {size:.1f} | {seconds:.2f} | {cells / seconds:,.0f} |")


if __name__ == "__main__":
    main()
