"""Build a benchmark corpus of real documents from Debian documentation packages.

The corpus mixes HTML, PDF, DOCX, Markdown and plain text roughly like a real
documentation set. Everything comes from documents that ship in Debian packages
(the Python, PostgreSQL, Git, R and LaTeX manuals plus the READMEs and changelogs
under the doc tree). DOCX is the one format Debian barely ships, so DOCX files are
built from real HTML pages (headings, paragraphs, lists, code and tables kept).

The build is deterministic (sorted inputs, fixed seed, normalised DOCX archives)
and idempotent: rerunning on a complete output directory verifies it and changes
nothing. ``manifest.json`` is written last, so an interrupted build is simply
resumed by the next run.

Usage::

    python bench/corpus.py OUT_DIR [--min-files 500] [--min-mb 50] [--install]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import io
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

from selectolax.lexbor import LexborHTMLParser, LexborNode

Kind = Literal["html", "pdf", "docx", "md", "txt"]
Method = Literal["copy", "gunzip", "html-to-docx", "html-to-md"]

KINDS: Final[tuple[Kind, ...]] = ("html", "pdf", "docx", "md", "txt")

# Debian 12 names. HTML: Python, PostgreSQL and Git manuals; PDF: LaTeX package
# manuals and the R manuals. About 130 MB to download in total.
DOC_PACKAGES: Final[tuple[str, ...]] = (
    "python3.11-doc",
    "postgresql-doc-15",
    "git-doc",
    "texlive-latex-recommended-doc",
    "r-doc-pdf",
)
DEFAULT_SOURCE_DIRS: Final[tuple[Path, ...]] = (
    Path("/usr/share/doc"),
    Path("/usr/lib/python3/dist-packages"),
)

# Share of files per type, like a documentation corpus dominated by HTML pages.
MIX: Final[dict[Kind, float]] = {"html": 0.60, "pdf": 0.15, "docx": 0.08, "md": 0.10, "txt": 0.07}
SEED: Final = 20240601
MIN_BYTES: Final = 1024  # smaller files are stubs or redirects, not documents
MAX_BYTES: Final = 20 * 1024 * 1024
# Bump when HTML conversion output changes, so generated files get rebuilt.
BUILDER_VERSION: Final = 1
MANIFEST: Final = "manifest.json"
SCALE_STEP: Final = 1.15
# Huge pages are slow to convert and could push a DOCX past MAX_BYTES.
MAX_CONVERT_BYTES: Final = 2 * 1024 * 1024

EXTENSIONS: Final[dict[str, Kind]] = {
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
    ".md": "md",
    ".markdown": "md",
    ".txt": "txt",
    ".rst": "txt",
}
# Extension-less doc files that are prose (README.Debian, changelog.Debian.gz, NEWS...).
TEXT_PREFIXES: Final = (
    "readme",
    "news",
    "changelog",
    "changes",
    "todo",
    "authors",
    "thanks",
    "history",
    "faq",
    "bugs",
)
# Packaging metadata and licences: boilerplate repeated across packages, not documents.
SKIP_NAME_PREFIXES: Final = (
    "license",
    "licence",
    "copying",
    "copyright",
    "requirements",
    "entry_points",
    "top_level",
    "dependency_links",
    "namespace_packages",
)
SKIP_DIR_SUFFIXES: Final = (".dist-info", ".egg-info", "__pycache__")


class CorpusError(Exception):
    """The corpus cannot be built as asked; the message says what to do."""


@dataclass(frozen=True)
class Candidate:
    """A source file that may go into the corpus."""

    path: Path  # resolved, so symlinked duplicates collapse to one
    kind: Kind
    gz: bool
    label: str  # path below its source dir, used to name the copy


@dataclass(frozen=True)
class Item:
    """One planned corpus file."""

    kind: Kind
    source: Candidate
    method: Method
    size: int = 0  # known up front for copies only
    sha256: str = ""


@dataclass(frozen=True)
class Entry:
    """One manifest record."""

    path: str
    type: Kind
    bytes: int
    sha256: str
    origin: str
    method: Method
    package: str | None


# ---------------------------------------------------------------------------
# Scanning sources


def classify(name: str) -> tuple[Kind | None, bool]:
    """Map a file name to its document type and whether it is gzipped."""
    lower = name.lower()
    gz = lower.endswith(".gz")
    if gz:
        lower = lower[:-3]
    if lower.startswith(SKIP_NAME_PREFIXES):
        return None, gz
    kind = EXTENSIONS.get(os.path.splitext(lower)[1])
    if kind is None and lower.startswith(TEXT_PREFIXES):
        kind = "txt"
    return kind, gz


def walk_files(root: Path) -> Iterator[Path]:
    """Yield files under root in a stable order, skipping metadata dirs."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.endswith(SKIP_DIR_SUFFIXES))
        for name in sorted(filenames):
            yield Path(dirpath) / name


def scan(source_dirs: Sequence[Path]) -> dict[Kind, list[Candidate]]:
    """Find candidate documents, grouped by type and sorted by real path."""
    found: dict[Path, Candidate] = {}
    for root in source_dirs:
        if not root.is_dir():
            continue
        for path in walk_files(root):
            kind, gz = classify(path.name)
            if kind is None:
                continue
            candidate = make_candidate(root, path, kind, gz)
            if candidate is not None and candidate.path not in found:
                found[candidate.path] = candidate
    by_kind: dict[Kind, list[Candidate]] = {k: [] for k in KINDS}
    for real in sorted(found):
        by_kind[found[real].kind].append(found[real])
    return by_kind


def make_candidate(root: Path, path: Path, kind: Kind, gz: bool) -> Candidate | None:
    """Resolve symlinks and pre-filter on size; gzipped sizes are checked later."""
    try:
        real = path.resolve(strict=True)
        size = real.stat().st_size
    except OSError:
        return None  # dangling symlink or unreadable
    if not real.is_file():
        return None
    if not gz and not MIN_BYTES <= size <= MAX_BYTES:
        return None
    label = path.relative_to(root).as_posix()
    return Candidate(path=real, kind=kind, gz=gz, label=label[:-3] if gz else label)


def read_source(candidate: Candidate) -> bytes | None:
    """Return the document bytes if they look like a real, usable document."""
    try:
        if candidate.gz:
            with gzip.open(candidate.path, "rb") as fh:
                data = fh.read(MAX_BYTES + 1)  # bounded: never inflate a huge archive
        else:
            data = candidate.path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    if not MIN_BYTES <= len(data) <= MAX_BYTES or not looks_valid(candidate.kind, data):
        return None
    return data


def looks_valid(kind: Kind, data: bytes) -> bool:
    """Cheap format sniffing so mislabelled or binary files stay out."""
    if kind == "pdf":
        return data.startswith(b"%PDF-") and pdf_has_text(data)
    if kind == "docx":
        return data.startswith(b"PK")
    return b"\x00" not in data


PDF_TEXT_PAGES: Final = 3
PDF_MIN_CHARS: Final = 200


def pdf_has_text(data: bytes) -> bool:
    """Keep PDFs with a text layer: logos and figure-only PDFs are not documents."""
    import pypdfium2 as pdfium  # deferred: costly import, only needed for PDFs

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError:
        return False
    try:
        chars = 0
        for index in range(min(len(pdf), PDF_TEXT_PAGES)):
            page = pdf[index]
            textpage = page.get_textpage()
            chars += len(textpage.get_text_range().strip())
            textpage.close()
            page.close()
        return chars >= PDF_MIN_CHARS
    finally:
        pdf.close()


# ---------------------------------------------------------------------------
# HTML to structured blocks (shared by the DOCX and Markdown writers)


TextKind = Literal["heading", "para", "item"]


@dataclass(frozen=True)
class Block:
    """A piece of document structure extracted from HTML."""

    kind: TextKind | Literal["code", "table"]
    text: str = ""
    level: int = 0
    rows: tuple[tuple[str, ...], ...] = ()


@dataclass
class ParsedHtml:
    title: str
    blocks: list[Block] = field(default_factory=list)


HEADINGS: Final = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
LEAF_BLOCKS: Final = {"p", "li", "dt", "dd", "caption", "blockquote"}
CONTAINERS: Final = {"pre", "table", "ul", "ol", "dl", "div", "section"}
BLOCK_TAGS: Final = LEAF_BLOCKS | set(HEADINGS) | CONTAINERS
# Navigation chrome of Sphinx (Python) and DocBook (PostgreSQL) pages, not content.
# Permalink anchors ("¶", "#") would otherwise leak into headings.
SKIP_SELECTORS: Final = (
    "script, style, nav, header, footer, noscript, form, .sphinxsidebar, .related,"
    " .navheader, .navfooter, .footer, a.headerlink, a.mark"
)
CONTENT_SELECTORS: Final = ("div[role=main]", "div.body", "div#content", "body")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACE = re.compile(r"\s+")


def clean(text: str, keep_lines: bool = False) -> str:
    """Drop XML-invalid control characters (python-docx rejects them) and squash spaces."""
    text = _CONTROL.sub("", text)
    return text.strip("\n") if keep_lines else _SPACE.sub(" ", text).strip()


def parse_html(data: bytes) -> ParsedHtml:
    tree = LexborHTMLParser(data.decode("utf-8", errors="replace"))
    title_node = tree.css_first("title")
    parsed = ParsedHtml(title=clean(title_node.text()) if title_node else "")
    for node in tree.css(SKIP_SELECTORS):
        node.decompose()
    root = next((n for sel in CONTENT_SELECTORS if (n := tree.css_first(sel)) is not None), None)
    if root is not None:
        parsed.blocks.extend(extract_blocks(root))
    return parsed


def extract_blocks(node: LexborNode) -> Iterator[Block]:
    """Walk the tree, emitting leaf blocks; containers are descended into."""
    for child in node.iter(include_text=False):
        tag = child.tag
        if tag in HEADINGS:
            yield from text_block("heading", child, HEADINGS[tag])
        elif tag == "pre":
            code = clean(child.text(deep=True), keep_lines=True)
            if code.strip():
                yield Block("code", code)
        elif tag == "table":
            yield from table_block(child)
        elif tag in LEAF_BLOCKS:
            kind: TextKind = "item" if tag == "li" else "para"
            if not has_block_child(child):
                yield from text_block(kind, child)
                continue
            # e.g. <li>text<ul>...</ul></li>: keep the item's own text, then its children.
            own = clean(child.text(deep=False))
            if own:
                yield Block(kind, own)
            yield from extract_blocks(child)
        else:
            yield from extract_blocks(child)


def has_block_child(node: LexborNode) -> bool:
    return any(c.tag in BLOCK_TAGS for c in node.iter(include_text=False))


def text_block(kind: TextKind, node: LexborNode, level: int = 0) -> Iterator[Block]:
    text = clean(node.text(deep=True))
    if text:
        yield Block(kind, text, level=level)


def table_block(node: LexborNode) -> Iterator[Block]:
    rows = []
    for tr in node.css("tr"):
        cells = tuple(
            clean(c.text(deep=True)) for c in tr.iter(include_text=False) if c.tag in ("td", "th")
        )
        if any(cells):
            rows.append(cells)
    if rows:
        yield Block("table", rows=tuple(rows))


def has_h1(parsed: ParsedHtml) -> bool:
    return any(b.kind == "heading" and b.level == 1 for b in parsed.blocks)


def is_convertible(data: bytes) -> bool:
    """Only pages with some real prose make useful DOCX/Markdown documents."""
    blocks = parse_html(data).blocks
    return sum(len(b.text) for b in blocks) >= MIN_BYTES and len(blocks) >= 3


# ---------------------------------------------------------------------------
# Writers for generated formats


FIXED_TIME: Final = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def html_to_docx(data: bytes) -> bytes:
    import docx  # deferred: only needed when DOCX files are generated
    from docx.shared import Pt

    parsed = parse_html(data)
    document = docx.Document()
    if parsed.title and not has_h1(parsed):
        document.add_heading(parsed.title, level=0)
    for block in parsed.blocks:
        if block.kind == "heading":
            document.add_heading(block.text, level=block.level)
        elif block.kind == "item":
            document.add_paragraph(block.text, style="List Bullet")
        elif block.kind == "code":
            run = document.add_paragraph().add_run(block.text)
            run.font.name = "Courier New"
            run.font.size = Pt(9)
        elif block.kind == "table":
            add_docx_table(document, block.rows)
        else:
            document.add_paragraph(block.text)
    props = document.core_properties
    # Fixed metadata: python-docx stamps "now" otherwise, which breaks determinism.
    props.title = parsed.title[:255]
    props.author = props.last_modified_by = "ledger bench corpus"
    props.created = props.modified = props.last_printed = FIXED_TIME.replace(tzinfo=None)
    props.revision = 1
    buf = io.BytesIO()
    document.save(buf)
    return normalise_zip(buf.getvalue())


def add_docx_table(document: Any, rows: Sequence[Sequence[str]]) -> None:
    width = max(len(r) for r in rows)
    table = document.add_table(rows=len(rows), cols=width)
    table.style = "Table Grid"
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.cell(r, c).text = text


def normalise_zip(data: bytes) -> bytes:
    """Rewrite a zip with fixed timestamps so identical content gives identical bytes."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, src.read(info))
    return out.getvalue()


def html_to_markdown(data: bytes) -> bytes:
    parsed = parse_html(data)
    parts = [f"# {parsed.title}"] if parsed.title and not has_h1(parsed) else []
    for block in parsed.blocks:
        parts.append(markdown_block(block))
    return ("\n\n".join(parts) + "\n").encode("utf-8")


def markdown_block(block: Block) -> str:
    if block.kind == "heading":
        return f"{'#' * block.level} {block.text}"
    if block.kind == "item":
        return f"- {block.text}"
    if block.kind == "code":
        return f"```\n{block.text}\n```"
    if block.kind == "table":
        width = max(len(r) for r in block.rows)
        lines = []
        for i, row in enumerate(block.rows):
            cells = [c.replace("|", "\\|") for c in row] + [""] * (width - len(row))
            lines.append("| " + " | ".join(cells) + " |")
            if i == 0:
                lines.append("|" + " --- |" * width)
        return "\n".join(lines)
    return block.text


# ---------------------------------------------------------------------------
# Selection


Source = tuple[Method, list[Candidate]]


class Pool:
    """Lazily accepts candidates in a seeded shuffled order.

    Taking n items always returns the same first n, so a larger corpus is a
    superset of a smaller one and file names stay stable as quotas grow.
    """

    def __init__(self, kind: Kind, sources: Sequence[Source], seed: int) -> None:
        self.kind = kind
        self._queue = iter(self._ordered(sources, seed))
        self.items: list[Item] = []
        self._seen: set[str] = set()

    def _ordered(self, sources: Sequence[Source], seed: int) -> Iterator[tuple[Method, Candidate]]:
        for method, candidates in sources:
            shuffled = list(candidates)
            random.Random(f"{seed}:{self.kind}:{method}").shuffle(shuffled)
            for candidate in shuffled:
                yield method, candidate

    def take(self, n: int) -> list[Item]:
        while len(self.items) < n:
            nxt = next(self._queue, None)
            if nxt is None:
                break
            item = self._accept(*nxt)
            if item is not None:
                self.items.append(item)
        return self.items[:n]

    def _accept(self, method: Method, candidate: Candidate) -> Item | None:
        data = read_source(candidate)
        if data is None:
            return None
        digest = hashlib.sha256(data).hexdigest()
        if digest in self._seen:  # identical copies shipped by several packages
            return None
        if method in ("html-to-docx", "html-to-md"):
            if len(data) > MAX_CONVERT_BYTES or not is_convertible(data):
                return None
            self._seen.add(digest)
            return Item(self.kind, candidate, method)
        self._seen.add(digest)
        method = "gunzip" if candidate.gz else "copy"
        return Item(self.kind, candidate, method, size=len(data), sha256=digest)


def make_pools(found: dict[Kind, list[Candidate]], seed: int) -> dict[Kind, Pool]:
    """Real files first; DOCX and Markdown fall back to conversions of real HTML."""
    html = found["html"]
    return {
        "html": Pool("html", [("copy", html)], seed),
        "pdf": Pool("pdf", [("copy", found["pdf"])], seed),
        "docx": Pool("docx", [("copy", found["docx"]), ("html-to-docx", html)], seed),
        "md": Pool("md", [("copy", found["md"]), ("html-to-md", html)], seed),
        "txt": Pool("txt", [("copy", found["txt"])], seed),
    }


def quotas_for(min_files: int, scale: float) -> dict[Kind, int]:
    return {k: max(1, math.ceil(MIX[k] * min_files * scale)) for k in KINDS}


def select(
    found: dict[Kind, list[Candidate]], min_files: int, min_bytes: int, seed: int
) -> list[Item]:
    """Grow all quotas together until copied real files alone reach min_bytes.

    Generated files are not counted (their size is known only after conversion),
    so the byte floor is met by real documents and generated ones come on top.
    """
    pools = make_pools(found, seed)
    scale = 1.0
    while True:
        quotas = quotas_for(min_files, scale)
        chosen = {k: pools[k].take(q) for k, q in quotas.items()}
        short = {k: (len(chosen[k]), q) for k, q in quotas.items() if len(chosen[k]) < q}
        if short:
            raise CorpusError(shortage_message(short, min_files, min_bytes))
        if sum(i.size for items in chosen.values() for i in items) >= min_bytes:
            return [item for k in KINDS for item in chosen[k]]
        scale *= SCALE_STEP


def shortage_message(short: dict[Kind, tuple[int, int]], min_files: int, min_bytes: int) -> str:
    detail = ", ".join(f"{k}: {have} of {need}" for k, (have, need) in short.items())
    missing = missing_packages()
    hint = " ".join(missing or DOC_PACKAGES)
    return (
        f"not enough source documents for {min_files} files / {min_bytes / 1e6:g} MB"
        f" ({detail}).\nInstall the documentation packages:"
        f" apt-get install --no-install-recommends {hint}\nor rerun with --install."
    )


# ---------------------------------------------------------------------------
# Naming


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME: Final = 120


def dest_names(items: Sequence[Item]) -> list[str]:
    """Sanitized, unique (also case-insensitively) relative paths, one per item."""
    used: set[str] = set()
    names = []
    for item in items:
        name = f"{item.kind}/{base_name(item.source.label)}.{item.kind}"
        if name.casefold() in used:
            tag = hashlib.sha1(str(item.source.path).encode()).hexdigest()[:8]
            name = f"{item.kind}/{base_name(item.source.label)}-{tag}.{item.kind}"
        used.add(name.casefold())
        names.append(name)
    return names


def base_name(label: str) -> str:
    stem, ext = os.path.splitext(label)
    # Keep only extensions that are document types; "changelog.Debian" keeps its dot part.
    if ext.lower() in EXTENSIONS:
        label = stem
    parts = (_UNSAFE.sub("_", part) for part in label.split("/") if part)
    name = "__".join(parts).strip("._") or "doc"
    if len(name) > MAX_NAME:
        tag = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[-(MAX_NAME - 9) :]}-{tag}".lstrip("._")
    return name


# ---------------------------------------------------------------------------
# Writing


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def remove_partial_writes(out_dir: Path) -> None:
    """Drop temp files an interrupted build left behind."""
    for kind in KINDS:
        for tmp in (out_dir / kind).glob(".*.tmp"):
            tmp.unlink()


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file so a crash never leaves a half-written document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def produce(item: Item) -> bytes:
    data = read_source(item.source)
    if data is None:
        raise CorpusError(f"source vanished or changed during the build: {item.source.path}")
    if item.method == "html-to-docx":
        return html_to_docx(data)
    if item.method == "html-to-md":
        return html_to_markdown(data)
    if hashlib.sha256(data).hexdigest() != item.sha256:
        raise CorpusError(f"source changed during the build: {item.source.path}")
    return data


def materialise(
    out_dir: Path, rel: str, item: Item, previous: Entry | None, packages: dict[Path, str]
) -> tuple[Entry, bool]:
    """Ensure one file is in place; returns its entry and whether it was (re)written."""
    path = out_dir / rel
    expected = item.sha256
    if not expected and previous is not None and previous.sha256 and reusable(previous, rel, item):
        expected = previous.sha256
    if expected and path.is_file() and sha256_file(path) == expected:
        size = path.stat().st_size
        return make_entry(rel, item, size, expected, packages), False
    data = produce(item)
    write_atomic(path, data)
    return make_entry(rel, item, len(data), hashlib.sha256(data).hexdigest(), packages), True


def reusable(previous: Entry, rel: str, item: Item) -> bool:
    """A generated file is kept if the last build made it from the same source the same way."""
    return (
        previous.path == rel
        and previous.method == item.method
        and previous.origin == str(item.source.path)
    )


def make_entry(rel: str, item: Item, size: int, digest: str, packages: dict[Path, str]) -> Entry:
    return Entry(
        path=rel,
        type=item.kind,
        bytes=size,
        sha256=digest,
        origin=str(item.source.path),
        method=item.method,
        package=packages.get(item.source.path),
    )


# ---------------------------------------------------------------------------
# Debian package helpers


DPKG_INFO: Final = Path("/var/lib/dpkg/info")


def owning_packages(paths: Iterable[Path]) -> dict[Path, str]:
    """Map files to their Debian package by reading dpkg's file lists (no dpkg -S per file)."""
    wanted = {str(p): p for p in paths}
    owners: dict[Path, str] = {}
    if not DPKG_INFO.is_dir():
        return owners
    for listing in sorted(DPKG_INFO.glob("*.list")):
        package = listing.stem.split(":")[0]
        for line in listing.read_text(errors="replace").splitlines():
            if line in wanted:
                owners.setdefault(wanted[line], package)
    return owners


def installed_versions(packages: Sequence[str]) -> dict[str, str]:
    if shutil.which("dpkg-query") is None:
        return {}
    fmt = "-f=${Package}\t${db:Status-Status}\t${Version}\n"
    result = subprocess.run(
        ["dpkg-query", "-W", fmt, *packages], capture_output=True, text=True, check=False
    )
    versions = {}
    for line in result.stdout.splitlines():
        name, status, version = [*line.split("\t"), "", ""][:3]
        if status == "installed":
            versions[name] = version
    return versions


def missing_packages() -> list[str]:
    versions = installed_versions(DOC_PACKAGES)
    return [p for p in DOC_PACKAGES if p not in versions]


def install_packages() -> None:
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    if sudo and shutil.which("sudo") is None:
        raise CorpusError("--install needs root (or sudo) to run apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *DOC_PACKAGES]
    for cmd in (["apt-get", "update"], install):
        print("+", " ".join(cmd), flush=True)
        if subprocess.run([*sudo, *cmd], env=env, check=False).returncode != 0:
            raise CorpusError(f"command failed: {' '.join(cmd)}")


# ---------------------------------------------------------------------------
# Manifest and orchestration


def load_manifest(out_dir: Path) -> dict[str, Entry]:
    """Previous build's entries by path; refuses to write into a foreign directory."""
    path = out_dir / MANIFEST
    if not path.is_file():
        # Only our per-type folders may be there (an interrupted first build): resume it.
        foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in KINDS)
        if foreign:
            raise CorpusError(f"{out_dir} has no {MANIFEST} but holds {foreign[0]!r}; not ours")
        return {}
    try:
        raw = json.loads(path.read_text())
        entries = [Entry(**e) for e in raw["files"]]
        if raw.get("builder_version") != BUILDER_VERSION:
            # Generated files from an older converter must be rebuilt: blank their hashes.
            copied = ("copy", "gunzip")
            entries = [e if e.method in copied else replace(e, sha256="") for e in entries]
        return {e.path: e for e in entries}
    except (ValueError, KeyError, TypeError) as exc:
        raise CorpusError(f"unreadable {path}: {exc}; remove the directory and rebuild") from exc


def summarise(entries: Sequence[Entry]) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {k: {"files": 0, "bytes": 0} for k in KINDS}
    for e in entries:
        totals[e.type]["files"] += 1
        totals[e.type]["bytes"] += e.bytes
    totals["total"] = {"files": len(entries), "bytes": sum(e.bytes for e in entries)}
    return totals


def render_manifest(entries: Sequence[Entry], args: argparse.Namespace) -> str:
    # No timestamps: identical inputs must give a byte-identical manifest.
    doc = {
        "builder_version": BUILDER_VERSION,
        "seed": args.seed,
        "min_files": args.min_files,
        "min_mb": args.min_mb,
        "source_dirs": [str(p) for p in args.source_dirs],
        "packages": installed_versions(DOC_PACKAGES),
        "totals": summarise(entries),
        "files": [asdict(e) for e in entries],
    }
    return json.dumps(doc, indent=1, sort_keys=False) + "\n"


def remove_stale(out_dir: Path, previous: dict[str, Entry], keep: set[str]) -> int:
    """Delete files an earlier build made that this plan no longer has; never touch others."""
    removed = 0
    for rel in sorted(set(previous) - keep):
        (out_dir / rel).unlink(missing_ok=True)
        removed += 1
    return removed


def build(out_dir: Path, args: argparse.Namespace) -> tuple[list[Entry], int]:
    """Build or verify the corpus; returns the entries and the number of files changed."""
    previous = load_manifest(out_dir) if out_dir.is_dir() else {}
    remove_partial_writes(out_dir)
    found = scan(args.source_dirs)
    items = select(found, args.min_files, int(args.min_mb * 1_000_000), args.seed)
    names = dest_names(items)
    packages = owning_packages(i.source.path for i in items)
    entries, changed = [], 0
    for rel, item in zip(names, items, strict=True):
        entry, written = materialise(out_dir, rel, item, previous.get(rel), packages)
        entries.append(entry)
        changed += written
    changed += remove_stale(out_dir, previous, set(names))
    manifest = render_manifest(entries, args)
    manifest_path = out_dir / MANIFEST
    if not manifest_path.is_file() or manifest_path.read_text() != manifest:
        write_atomic(manifest_path, manifest.encode())  # last: marks the build complete
        changed += 1
    return entries, changed


def print_summary(entries: Sequence[Entry], changed: int, elapsed: float) -> None:
    totals = summarise(entries)
    print(f"{'type':<6} {'files':>6} {'MB':>8} {'share':>6}")
    for kind, row in totals.items():
        share = row["files"] / max(1, totals["total"]["files"]) * 100
        print(f"{kind:<6} {row['files']:>6} {row['bytes'] / 1e6:>8.1f} {share:>5.0f}%")
    state = "up to date, nothing changed" if changed == 0 else f"{changed} files written or removed"
    print(f"{state}; {elapsed:.1f} s")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Build a benchmark corpus of real documents.")
    parser.add_argument("out_dir", type=Path, help="output directory (created if missing)")
    parser.add_argument("--min-files", type=int, default=500, help="minimum file count")
    parser.add_argument("--min-mb", type=float, default=50.0, help="minimum MB of real files")
    parser.add_argument(
        "--install",
        action="store_true",
        help=f"apt-get install the documentation packages first: {' '.join(DOC_PACKAGES)}",
    )
    parser.add_argument(
        "--source-dirs",
        type=Path,
        nargs="+",
        default=list(DEFAULT_SOURCE_DIRS),
        help="directories to take documents from (default: Debian doc trees)",
    )
    parser.add_argument("--seed", type=int, default=SEED, help="selection seed (default fixed)")
    args = parser.parse_args(argv)
    if args.min_files < 1 or args.min_mb < 0:
        parser.error("--min-files must be >= 1 and --min-mb >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    try:
        if args.install:
            install_packages()
        elif args.source_dirs == list(DEFAULT_SOURCE_DIRS) and (missing := missing_packages()):
            # Build from what is installed, but say the corpus differs from the documented one.
            print(f"note: not installed: {' '.join(missing)} (use --install)", file=sys.stderr)
        entries, changed = build(args.out_dir, args)
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_summary(entries, changed, time.monotonic() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
