"""Fuzzing the extractors with Hypothesis: whatever the bytes, only the ledger's own typed
errors come out, nothing hangs, memory stays bounded.

Text, HTML and detection run in this process; PDF and DOCX (C parsers) run in a real
ProcessPool child with a timeout and a memory limit, as in production, so a hang or a
blow-up shows as ``timeout`` / ``too_large`` / ``worker_crashed`` and fails the test.
Mutations start from real documents (made by the corpus generators), which reaches much
deeper into the parsers than random bytes. Crashers found are kept as ``@example``s.
"""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ledger.errors import LedgerError
from ledger.processors.ingest.detect import detect_type
from ledger.processors.ingest.extract_html import extract_html
from ledger.processors.ingest.extract_text import decode_text
from ledger.worker.pool import ProcessPool
from tests.helpers import fuzz_tasks
from tests.ingest.fixtures import make_docx, make_pdf, paragraphs

MiB = 2**20
# Deterministic in CI: the same inputs every run (failures reproduce); the @examples hold
# regressions. Budgets keep the whole file well under a minute.
FAST = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
POOLED = settings(FAST, max_examples=200)
# Codes that mean the input defeated the defences rather than being refused by them.
NOT_ALLOWED = {"timeout", "worker_crashed", "exception"}

_SEEDS: dict[str, bytes] = {}


def _seed(kind: str) -> bytes:
    """A real small document to mutate (made once)."""
    if kind not in _SEEDS:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"seed.{kind}"
            if kind == "pdf":
                make_pdf(path, paragraphs(3, 2))
            else:
                make_docx(path, paragraphs(4, 3), [["a", "b"], ["1", "2"]])
            _SEEDS[kind] = path.read_bytes()
    return _SEEDS[kind]


@st.composite
def mutated(draw: st.DrawFn, kind: str) -> bytes:
    """A real document with bytes flipped, spliced, deleted or the tail cut off."""
    data = bytearray(_seed(kind))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "splice", "delete", "truncate", "repeat"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "splice":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 256))]
        elif op == "truncate":
            del data[pos:]
        else:
            chunk = bytes(data[pos : pos + draw(st.integers(1, 128))])
            data[pos:pos] = chunk * draw(st.integers(2, 50))
    return bytes(data)


@st.composite
def docx_rezipped(draw: st.DrawFn) -> bytes:
    """A real DOCX whose members are rewritten: XML mutated, names changed, members dropped."""
    with zipfile.ZipFile(io.BytesIO(_seed("docx"))) as archive:
        members = [(i.filename, archive.read(i)) for i in archive.infolist()]
    out = io.BytesIO()
    with (
        warnings.catch_warnings(),  # duplicate names are part of the point
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        warnings.simplefilter("ignore")
        for name, body in members:
            action = draw(st.sampled_from(["keep", "keep", "keep", "mutate", "drop", "rename"]))
            if action == "drop":
                continue
            if action == "rename":
                name = draw(st.sampled_from(["../x.xml", "/abs.xml", "word/\x00.xml", name + "x"]))
            if action == "mutate" and body:
                pos = draw(st.integers(0, len(body) - 1))
                body = body[:pos] + draw(st.binary(max_size=32)) + body[pos + 1 :]
            archive.writestr(name, body)
    return out.getvalue()


def _allowed(error: BaseException) -> None:
    """Only a LedgerError may come out, and not one that means a defence failed."""
    if not isinstance(error, LedgerError):
        raise AssertionError(f"untyped error escaped: {error!r}") from error
    code = getattr(error, "code", None)
    assert code not in NOT_ALLOWED, f"{code}: {error.message}"


# -- in process ------------------------------------------------------------------------------

TAGS = ["<p>", "</p>", "<div>", "</div>", "<script>", "</script>", "<style>", "<!--", "-->",
        "<table><tr><td>", "</td></tr></table>", "<meta charset='", "utf-16", "'>",
        "<![CDATA[", "&amp;", "&#0;", "&#x110000;", "<br/>", "<nav>", "<template>", "\x00",
        "\ufeff"]  # fmt: skip


@FAST
@given(
    parts=st.lists(
        st.one_of(st.sampled_from(TAGS), st.text(max_size=20), st.binary(max_size=20)),
        max_size=60,
    ),
    depth=st.integers(0, 400),
)
@example(parts=["<meta charset='utf-16'>", "\x00<p>x"], depth=0)
@example(parts=["<meta charset='x-unknown-zz'>"], depth=3)
def test_html_extractor(parts: list[str | bytes], depth: int) -> None:
    data = b"".join(p if isinstance(p, bytes) else p.encode("utf-8", "surrogatepass")
                    for p in parts) + b"<div>" * depth  # fmt: skip
    try:
        html = extract_html(data, max_depth=256)
        for piece in html.pieces:
            assert isinstance(piece, str)
    except BaseException as exc:
        _allowed(exc)


@FAST
@given(
    data=st.binary(max_size=4096),
    bom=st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]),
    block=st.integers(1, 512),
    sample=st.integers(1, 2048),
)
@example(data=b"\xff", bom=b"\xfe\xff", block=1, sample=1)  # an odd byte after a UTF-16 BOM
def test_text_decoder(data: bytes, bom: bytes, block: int, sample: int) -> None:
    raw = bom + data
    blocks = [raw[i : i + block] for i in range(0, len(raw), block)]
    try:
        decoded = decode_text(iter(blocks), sample_bytes=sample)
        text = "".join(decoded.pieces)
        assert "\x00" not in text and "\r" not in text
    except BaseException as exc:
        _allowed(exc)


@FAST
@given(
    head=st.one_of(st.binary(max_size=2048), mutated("pdf"), mutated("docx")),
    ext=st.sampled_from(["", ".txt", ".pdf", ".docx", ".docm", ".html", ".md", ".bin"]),
)
def test_detect(tmp_path: Path, head: bytes, ext: str) -> None:
    path = tmp_path / f"input{ext}"
    path.write_bytes(head)
    try:
        detect_type(str(path), head[:8192])
    except BaseException as exc:
        _allowed(exc)


# -- in the process pool ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool_runner() -> Iterator[tuple[asyncio.AbstractEventLoop, ProcessPool]]:
    loop = asyncio.new_event_loop()

    async def make() -> ProcessPool:
        return ProcessPool(1, memory_limit_bytes=512 * MiB, max_tasks_per_child=None)

    pool = loop.run_until_complete(make())
    yield loop, pool
    loop.run_until_complete(pool.close())
    loop.close()


def _in_pool(
    runner: tuple[asyncio.AbstractEventLoop, ProcessPool], fn: object, data: bytes, ext: str
) -> None:
    loop, pool = runner
    fd, name = tempfile.mkstemp(suffix=ext)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        try:
            loop.run_until_complete(pool.run(fn, name, timeout=10))  # type: ignore[arg-type]
        except BaseException as exc:
            _allowed(exc)
        children = [psutil.Process(pid) for pid in pool.child_pids()]
        for child in children:
            assert child.memory_info().rss < 400 * MiB
    finally:
        os.unlink(name)


@POOLED
@given(data=st.one_of(mutated("pdf"), st.binary(max_size=512).map(lambda b: b"%PDF-1.4\n" + b)))
@example(data=b"%PDF-1.4\n")
@example(data=b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 1 0 R >> endobj\ntrailer<</Root 1 0 R>>")
def test_pdf_extractor(
    pool_runner: tuple[asyncio.AbstractEventLoop, ProcessPool], data: bytes
) -> None:
    _in_pool(pool_runner, fuzz_tasks.pdf_text, data, ".pdf")


@POOLED
@given(data=st.one_of(mutated("docx"), docx_rezipped()))
@example(data=b"PK\x03\x04")
@example(data=b"PK\x05\x06" + b"\x00" * 18)
def test_docx_extractor(
    pool_runner: tuple[asyncio.AbstractEventLoop, ProcessPool], data: bytes
) -> None:
    _in_pool(pool_runner, fuzz_tasks.docx_text, data, ".docx")


@pytest.fixture(scope="module", autouse=True)
def rss_before_fuzzing() -> int:
    """This process's size before the first fuzz run of this module (other test modules in
    the same process may have loaded large libraries, such as the embedding model)."""
    return int(psutil.Process().memory_info().rss)


def test_fuzzing_is_bounded_in_memory(rss_before_fuzzing: int) -> None:
    """The in-process extractors kept no memory: this process grew little over the runs."""
    assert psutil.Process().memory_info().rss - rss_before_fuzzing < 256 * MiB
