"""Damaged PPTX, XLSX, EPUB, ODT and RTF files: bytes overwritten, tails cut, and XML
broken inside intact zips. Whatever the damage, ``process_file`` either reads the file or
raises a ``PermanentError`` with one of the document codes: never another exception."""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

import pytest

from ledger.errors import PermanentError
from ledger.processors.ingest import IngestOptions, process_file
from tests.ingest import office_fixtures as of
from tests.ingest.fixtures import paragraphs

pytestmark = pytest.mark.timeout(120)

DOCUMENT_CODES = {
    "corrupt", "unsupported_type", "no_text", "encrypted", "unsafe_xml", "unsafe_archive",
    "too_large",
}  # fmt: skip


def _originals(directory: Path) -> list[Path]:
    directory.mkdir()
    text = paragraphs(11, 6)
    return [
        of.make_pptx(directory / "deck.pptx", [of.Slide("One", text[:3], notes=text[3]),
                                               of.Slide("Two", text[3:], table=[["a", "b"]])]),
        of.make_xlsx(directory / "book.xlsx", {"A": [[t] for t in text], "B": [[1, 2.5]]}),
        of.make_epub(directory / "novel.epub", [("One", text[:3]), ("Two", text[3:])]),
        of.make_odt(directory / "notes.odt", "".join(f"<text:p>{t}</text:p>" for t in text)),
        of.make_rtf(directory / "memo.rtf", text),
    ]  # fmt: skip


def _mangled_bytes(source: Path, target: Path, rng: random.Random) -> Path:
    data = bytearray(source.read_bytes())
    if rng.random() < 0.5:
        for _ in range(rng.randint(1, 40)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    else:
        del data[rng.randrange(1, len(data)) :]
    target.write_bytes(bytes(data))
    return target


def _mangled_xml(source: Path, target: Path, rng: random.Random) -> Path:
    """The same zip with one XML member's text cut, or characters of it deleted or swapped
    for markup: valid zip, broken XML."""
    with zipfile.ZipFile(source) as archive:
        names = [n for n in archive.namelist() if n.endswith((".xml", ".opf", ".xhtml"))]
        name = rng.choice(names)
        text = bytearray(archive.read(name))
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(text))
        choice = rng.random()
        if choice < 0.3:
            del text[at:]
            break
        if choice < 0.6:
            del text[at : at + rng.randint(1, 30)]
        else:
            text[at:at] = rng.choice([b"<", b">", b"&", b'"', b"</x>", b"<p:sp>", b"\x00"])
    return of.rebuild_zip(source, target, replace={name: bytes(text)})


def _error_of(path: Path, spool: Path) -> PermanentError | None:
    try:
        process_file(
            str(path),
            expected_size=None,
            expected_mtime_ns=None,
            expected_sha256=None,
            options=IngestOptions(),
            spool_dir=str(spool),
        )
    except PermanentError as error:
        return error
    return None


def test_damaged_files_end_as_document_errors_or_text(tmp_path: Path) -> None:
    originals = _originals(tmp_path / "good")
    rng = random.Random(20261206)
    spool = tmp_path / "spool"
    spool.mkdir()
    codes = []
    for index in range(120):
        source = originals[index % len(originals)]
        target = tmp_path / f"damaged-{index:03d}{source.suffix}"
        if source.suffix != ".rtf" and index % 2:
            _mangled_xml(source, target, rng)
        else:
            _mangled_bytes(source, target, rng)
        error = _error_of(target, spool)
        if error is not None:
            assert error.code in DOCUMENT_CODES, (target.name, error.code, error.message)
            assert len(error.message) < 1000, error.message
        codes.append("done" if error is None else error.code)
    # The damage was real: most files fail, and as something more precise than a shrug.
    assert codes.count("corrupt") > 30
