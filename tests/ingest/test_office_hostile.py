"""Hostile and broken PPTX, XLSX, EPUB, ODT and RTF files, in the real process pool: each
ends with its own clear error code, and the child goes on with the next document.

Per format: a truncated file, other content under the format's name, a zip bomb (by its
declared sizes, and a member that declares 2,000 bytes and inflates to 64 MiB), an XML
entity bomb (billion laughs), and the format's own trap (a DRM EPUB, a sheet declaring the
whole grid, a row in the last column a thousand times).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from ledger.errors import ProcessingError
from ledger.processors.ingest import IngestOptions, IngestOutcome, iter_spool, process_file
from ledger.worker.pool import ProcessPool
from tests.ingest import office_fixtures as of
from tests.ingest.fixtures import MiB

pytestmark = pytest.mark.timeout(180)

# Far below what any expanded bomb would need: the laughs are 200 MB per reference as
# UTF-8 and several times that as Python strings; the zip bombs inflate to 1 GiB.
MEMORY_LIMIT = 512 * MiB


def _good(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return {
        "pptx": of.make_pptx(directory / "deck.pptx", [of.Slide("Intro", ["hello deck"])]),
        "xlsx": of.make_xlsx(directory / "book.xlsx", {"Sheet": [["hello book", "total"]]}),
        "epub": of.make_epub(directory / "novel.epub", [("One", ["hello novel"])]),
        "odt": of.make_odt(directory / "notes.odt", "<text:p>hello notes</text:p>"),
        "rtf": of.make_rtf(directory / "memo.rtf", ["hello memo"]),
    }


def make_hostile_corpus(directory: Path) -> dict[str, str | None]:
    """Files (relative to ``directory``) and the error code each must end with (None:
    processed)."""
    directory.mkdir(parents=True, exist_ok=True)
    good = _good(directory / "good")
    d = directory
    cases: dict[Path, str | None] = {path: None for path in good.values()}

    def add(path: Path, code: str | None) -> None:
        cases[path] = code

    for kind, path in good.items():
        add(of.truncated(path, d / f"truncated.{kind}"), "corrupt")
        wrong = d / f"wrong.{kind}"
        wrong.write_text("<html><body>Not Found</body></html>\n", encoding="utf-8")
        add(wrong, "unsupported_type")
        if kind != "rtf":
            add(of.zip_bomb_of(path, d / f"bomb.{kind}"), "too_large")
    add(of.write_zip(d / "zip.xlsx", {"readme.txt": b"a zip, not a workbook"}), "unsupported_type")
    # Members whose directory entry declares 2,000 bytes and whose data inflates to 64 MiB.
    for kind, member in [
        ("pptx", "ppt/slides/slide1.xml"),
        ("xlsx", "xl/worksheets/sheet1.xml"),
        ("epub", "OEBPS/text/ch00.xhtml"),
        ("odt", "content.xml"),
    ]:
        add(of.lying_member_of(good[kind], d / f"liar.{kind}", member), "corrupt")  # fmt: skip

    slide = of.read_member(good["pptx"], "ppt/slides/slide1.xml")
    laughs_pptx = of.with_laughs(slide, b">Intro<").replace(b"safe &i;", b">safe &i;<")
    add(of.rebuild_zip(good["pptx"], d / "laughs.pptx",
                       replace={"ppt/slides/slide1.xml": laughs_pptx}), "unsafe_xml")  # fmt: skip
    sheet = of.with_laughs(
        of.read_member(good["xlsx"], "xl/worksheets/sheet1.xml"), b"<t>total</t>"
    ).replace(b"safe &i;", b"<t>safe &i;</t>")
    add(of.rebuild_zip(good["xlsx"], d / "laughs.xlsx",
                       replace={"xl/worksheets/sheet1.xml": sheet}), "unsafe_xml")  # fmt: skip
    members = of.epub_members([("One", ["hello"])])
    opf = of.with_laughs(members["OEBPS/content.opf"], b"<dc:title>Book</dc:title>")
    add(of.write_zip(d / "laughs.epub", {**members, "OEBPS/content.opf": opf}), "unsafe_xml")
    chapter = of.with_laughs(members["OEBPS/text/ch00.xhtml"], b"<h1>One</h1>")
    add(of.write_zip(d / "laughs-chapter.epub",
                     {**members, "OEBPS/text/ch00.xhtml": chapter}), None)  # fmt: skip
    content = of.odt_content("<text:p>safe &i;</text:p>", prolog=of.LAUGHS_DTD)
    add(of.write_zip(d / "laughs.odt", of.odt_members(content)), "unsafe_xml")

    drm = of.drm_encryption_xml(
        "OEBPS/text/ch00.xhtml", "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
    )
    add(of.write_zip(d / "drm.epub", {**members, "META-INF/encryption.xml": drm}), "encrypted")
    add(of.make_sparse_giant_xlsx(d / "giant.xlsx"), None)
    add(of.make_wide_rows_xlsx(d / "wide.xlsx", rows=1000), "too_large")
    return {path.relative_to(d).as_posix(): code for path, code in cases.items()}


async def _outcome_or_code(pool: ProcessPool, path: str, spool: Path) -> IngestOutcome | str:
    job = functools.partial(
        process_file,
        path,
        expected_size=None,
        expected_mtime_ns=None,
        expected_sha256=None,
        options=IngestOptions(),
        spool_dir=str(spool),
    )
    try:
        return await pool.run(job, timeout=60.0)
    except ProcessingError as error:
        return error.code


async def test_every_hostile_file_ends_with_its_code_and_the_rest_are_read(
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus"
    cases = make_hostile_corpus(corpus)
    spool = tmp_path / "spool"
    spool.mkdir()
    # One child, in order: every bad file is followed by more work for the same child.
    async with ProcessPool(1, memory_limit_bytes=MEMORY_LIMIT) as pool:
        results = [await _outcome_or_code(pool, str(corpus / name), spool) for name in cases]
    got = {
        name: result if isinstance(result, str) else None
        for name, result in zip(cases, results, strict=True)
    }
    assert got == cases
    outcomes = {
        name: result
        for name, result in zip(cases, results, strict=True)
        if isinstance(result, IngestOutcome)
    }
    _check_texts(spool, outcomes)


def _check_texts(spool: Path, outcomes: dict[str, IngestOutcome]) -> None:
    assert sorted(os.listdir(spool)) == sorted(
        os.path.basename(outcome.spool_path) for outcome in outcomes.values()
    )
    texts = {
        name.rsplit("/", 1)[-1]: " ".join(
            chunk.text for batch in iter_spool(o.spool_path, batch_size=100) for chunk in batch
        )
        for name, o in outcomes.items()
    }
    for name in ("deck.pptx", "book.xlsx", "novel.epub", "notes.odt", "memo.rtf"):
        assert f"hello {name.split('.')[0]}" in texts[name]
    # lexbor leaves an entity declared in a chapter's DTD unexpanded.
    assert "safe" in texts["laughs-chapter.epub"]
    assert "haha" not in texts["laughs-chapter.epub"]
    assert texts["giant.xlsx"] == "Sheet: Huge\ncorner | value\nfar corner"
