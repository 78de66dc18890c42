"""The two-package corpus of issue 14's ingest target: Python 3.11's HTML manual and LaTeX
package manuals in PDF, from Debian packages, copied into one folder.

    python bench/two_package_corpus.py OUT_DIR [--install]

HTML: every ``.html`` page of ``python3.11-doc`` (530 files, about 51 MB). PDF: the first
85 PDF files of ``texlive-latex-recommended-doc`` by path that are at most 1 MiB (about
24 MB): the package's bigger manuals are a few books of 2-10 MB, which would make one
document's parse most of the run. The selection is deterministic; a rerun replaces the
folder's contents with the same files.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

HTML_PACKAGE = "python3.11-doc"
PDF_PACKAGE = "texlive-latex-recommended-doc"
PDF_COUNT = 85
PDF_MAX_BYTES = 1 << 20


def package_files(package: str, suffix: str) -> list[Path]:
    listed = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
    if listed.returncode != 0:
        raise SystemExit(f"{package} is not installed (apt-get install -y {package}, or --install)")
    paths = (Path(line) for line in listed.stdout.splitlines() if line.endswith(suffix))
    return sorted(p for p in paths if p.is_file() and not p.is_symlink())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--install", action="store_true", help="apt-get install both first")
    args = parser.parse_args()
    if args.install:
        subprocess.run(["apt-get", "install", "-y", HTML_PACKAGE, PDF_PACKAGE], check=True)
    html = package_files(HTML_PACKAGE, ".html")
    pdf = [p for p in package_files(PDF_PACKAGE, ".pdf") if p.stat().st_size <= PDF_MAX_BYTES]
    chosen = {"html": html, "pdf": pdf[:PDF_COUNT]}
    shutil.rmtree(args.out_dir, ignore_errors=True)
    total = 0
    for kind, files in chosen.items():
        for i, source in enumerate(files):
            target = args.out_dir / kind / f"{i:04d}-{source.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            total += source.stat().st_size
    counts = ", ".join(f"{len(files)} {kind}" for kind, files in chosen.items())
    print(f"{args.out_dir}: {counts}, {total / 1e6:.1f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
