"""process_file end to end, inside the real ProcessPool (real timeouts and memory limits)."""

from __future__ import annotations

import asyncio
import functools
import os
import random
from pathlib import Path
from typing import TypedDict, Unpack

import pytest

from ledger.errors import PermanentError, ProcessingError
from ledger.processors.ingest import (
    ChunkRecord,
    IngestOptions,
    IngestOutcome,
    iter_spool,
    process_file,
    sha256_file,
)
from ledger.processors.ingest.extract_pdf import extract_pdf
from ledger.worker.pool import ProcessPool
from tests.ingest import fixtures as fx
from tests.ingest import pool_tasks

pytestmark = pytest.mark.timeout(120)

MEMORY_LIMIT = 1024 * fx.MiB
TIMEOUT = 60.0


class Expected(TypedDict, total=False):
    size: int
    mtime_ns: int
    sha256: str
    options: IngestOptions


def job(
    path: str, spool_dir: Path, **expected: Unpack[Expected]
) -> functools.partial[IngestOutcome]:
    return functools.partial(
        process_file,
        path,
        expected_size=expected.get("size"),
        expected_mtime_ns=expected.get("mtime_ns"),
        expected_sha256=expected.get("sha256"),
        options=expected.get("options", IngestOptions()),
        spool_dir=str(spool_dir),
    )


async def outcome_or_code(pool: ProcessPool, path: str, spool: Path) -> IngestOutcome | str:
    try:
        return await pool.run(job(path, spool), timeout=TIMEOUT)
    except ProcessingError as error:
        return error.code


def read_chunks(outcome: IngestOutcome) -> list[ChunkRecord]:
    return [chunk for batch in iter_spool(outcome.spool_path, batch_size=100) for chunk in batch]


async def test_every_bad_case_ends_as_expected(tmp_path: Path) -> None:
    cases = fx.make_bad_corpus(tmp_path / "bad")
    assert sum(code is not None for code in cases.values()) >= 25
    spool = tmp_path / "spool"
    spool.mkdir()
    async with ProcessPool(2, memory_limit_bytes=MEMORY_LIMIT) as pool:
        results = await asyncio.gather(*(outcome_or_code(pool, p, spool) for p in cases))
    got = {
        os.path.basename(path): result if isinstance(result, str) else None
        for path, result in zip(cases, results, strict=True)
    }
    expected = {os.path.basename(path): code for path, code in cases.items()}
    assert got == expected
    # Failures leave nothing behind; every success left exactly one complete spool.
    successes = [r for r in results if not isinstance(r, str)]
    assert sorted(os.listdir(spool)) == sorted(os.path.basename(r.spool_path) for r in successes)
    for outcome in successes:
        chunks = read_chunks(outcome)
        assert len(chunks) == outcome.chunks > 0
        assert all(chunk.char_end <= outcome.characters for chunk in chunks)


async def test_good_corpus_outcomes(tmp_path: Path) -> None:
    corpus = fx.make_good_corpus(tmp_path / "good", 10)
    spool = tmp_path / "spool"
    spool.mkdir()
    async with ProcessPool(2, memory_limit_bytes=MEMORY_LIMIT) as pool:
        results = await asyncio.gather(*(outcome_or_code(pool, p, spool) for p in corpus))
    for (path, kind), outcome in zip(corpus.items(), results, strict=True):
        assert isinstance(outcome, IngestOutcome), (path, outcome)
        digest, size = sha256_file(path)
        assert (outcome.type, outcome.sha256, outcome.size) == (kind, digest, size)
        assert (outcome.pages is not None) == (kind == "pdf")
        assert (outcome.encoding is None) == (kind in ("pdf", "docx"))
        assert outcome.chunks == len(read_chunks(outcome)) > 0
        timings = outcome.timings
        assert min(timings.read, timings.extract, timings.chunk, timings.spool) >= 0
        assert timings.extract > 0


async def test_chunk_offsets_index_the_extracted_text(tmp_path: Path) -> None:
    pages = [" ".join(fx.paragraphs(n, 4)) for n in range(6)]
    path = str(fx.make_pdf(tmp_path / "doc.pdf", pages))
    pdf = extract_pdf(path, max_pages=100, max_chars_per_page=10**6)
    pieces = list(pdf.pieces)
    text = "".join(t for t, _ in pieces)
    starts = []
    offset = 0
    for piece, page in pieces:
        starts.append((offset, page))
        offset += len(piece)
    options = IngestOptions(chunk_size=300, chunk_overlap=50)
    async with ProcessPool(1, memory_limit_bytes=MEMORY_LIMIT) as pool:
        outcome = await pool.run(job(path, tmp_path, options=options), timeout=TIMEOUT)
    assert outcome.pages == 6
    assert outcome.characters == len(text)
    chunks = read_chunks(outcome)
    for chunk in chunks:
        assert chunk.text == text[chunk.char_start : chunk.char_end]
        assert len(chunk.text) <= 300
        assert chunk.page == max(page for start, page in starts if start <= chunk.char_start)
    assert {chunk.page for chunk in chunks} == set(range(1, 7))


async def test_expected_size_mtime_and_hash_are_checked(tmp_path: Path) -> None:
    text_file = tmp_path / "a.txt"
    text_file.write_text("\n\n".join(fx.paragraphs(3, 4)))
    pdf_file = fx.make_pdf(tmp_path / "b.pdf", fx.paragraphs(4, 2))
    async with ProcessPool(2, memory_limit_bytes=MEMORY_LIMIT) as pool:
        for file in (text_file, pdf_file):
            path = str(file)
            stat = os.stat(path)
            digest, size = sha256_file(path)
            good = await pool.run(
                job(path, tmp_path, size=size, mtime_ns=stat.st_mtime_ns, sha256=digest)
            )
            assert good.sha256 == digest
            for wrong in (
                Expected(size=size + 1),
                Expected(mtime_ns=stat.st_mtime_ns + 1),
                Expected(sha256="0" * 64),
            ):
                with pytest.raises(PermanentError) as info:
                    await pool.run(job(path, tmp_path, **wrong))
                assert info.value.code == "source_changed"
    assert [p for p in os.listdir(tmp_path) if p.endswith(".partial")] == []


async def test_a_50_mb_line_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    path = str(fx.make_single_line(tmp_path / "line.txt"))
    async with ProcessPool(1) as pool:
        outcome, peak = await pool.run(
            pool_tasks.process_and_peak_rss, path, str(tmp_path), timeout=TIMEOUT
        )
    assert outcome.characters == 50 * fx.MiB
    assert outcome.chunks > 50_000
    # The file alone is 50 MB; decoded as one string it would take 50 MB more. The child
    # (interpreter and libraries included) stays well below that.
    assert peak < 150 * fx.MiB, peak / fx.MiB


async def test_caps_from_options(tmp_path: Path) -> None:
    html = fx.make_html(tmp_path / "a.html", fx.paragraphs(1, 20))
    text = tmp_path / "b.txt"
    text.write_text("words " * 10_000)
    cases = [
        (html, IngestOptions(max_html_bytes=1000)),
        (text, IngestOptions(max_file_bytes=1000)),
        (text, IngestOptions(max_chars_per_document=5000)),
    ]
    async with ProcessPool(1, memory_limit_bytes=MEMORY_LIMIT) as pool:
        for path, options in cases:
            with pytest.raises(PermanentError) as info:
                await pool.run(job(str(path), tmp_path, options=options))
            assert info.value.code == "too_large"
    assert os.listdir(tmp_path) == ["a.html", "b.txt"]


def make_mangled(directory: Path, count: int) -> list[str]:
    """Good documents with random bytes overwritten or their tail cut off."""
    corpus = fx.make_good_corpus(directory / "good", 5)
    rng = random.Random(20240601)
    mangled = []
    for index in range(count):
        source = Path(list(corpus)[index % 5])
        data = bytearray(source.read_bytes())
        if index % 2:
            for _ in range(rng.randint(1, 40)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            del data[rng.randrange(1, len(data)) :]
        target = directory / f"mangled_{index:02d}{source.suffix}"
        target.write_bytes(bytes(data))
        mangled.append(str(target))
    return mangled


async def test_mangled_files_only_ever_raise_processing_errors(tmp_path: Path) -> None:
    mangled = make_mangled(tmp_path, 40)
    spool = tmp_path / "spool"
    spool.mkdir()
    async with ProcessPool(2, memory_limit_bytes=MEMORY_LIMIT) as pool:
        results = await asyncio.gather(
            *(pool.run(job(p, spool), timeout=TIMEOUT) for p in mangled), return_exceptions=True
        )
    for path, result in zip(mangled, results, strict=True):
        assert isinstance(result, (IngestOutcome, ProcessingError)), (path, result)
        if isinstance(result, ProcessingError):
            assert result.code in {"corrupt", "unsupported_type", "no_text", "encrypted"}, (
                path,
                result.code,
                result.message,
            )


def test_process_file_directly_for_missing_and_directory(tmp_path: Path) -> None:
    for path, code in ((tmp_path / "nope.txt", "source_missing"), (tmp_path, "unreadable")):
        with pytest.raises(PermanentError) as info:
            job(str(path), tmp_path)()
        assert info.value.code == code
