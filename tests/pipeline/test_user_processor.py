"""User processors that get extracted text: the example, through the ledger."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from examples.word_count_processor import word_count
from ledger.app import Ledger
from ledger.errors import InvalidInput
from ledger.model import BatchSpec
from ledger.processors.ingest import ChunkRecord, with_extracted_text
from ledger.states import DocumentStatus
from tests.ingest import fixtures as fx
from tests.pipeline.support import run_batch

ROOT = Path(__file__).resolve().parents[2]
NAME = "examples.word_count_processor:word_count"


def true_count(text: str) -> int:
    return len(re.findall(r"\w+", text))


async def test_word_count_example_runs_as_a_batch(led: Ledger, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    text = "\n\n".join(fx.paragraphs(8, 12))
    (folder / "long.txt").write_text(text, encoding="utf-8")
    pages = fx.paragraphs(9, 3)
    fx.make_pdf(folder / "three.pdf", pages)
    (folder / "empty.txt").write_bytes(b"")
    paths = sorted(folder.iterdir())
    # Small overlapping chunks: the example must still count every word exactly once.
    spec = BatchSpec(id="wc", processor=NAME, options={"chunk_size": 60, "chunk_overlap": 25})
    await run_batch(led, spec, paths)
    docs = {Path(d.source).name: d for d in (await led.reads.documents("wc")).items}
    long = docs["long.txt"]
    assert long.status is DocumentStatus.DONE
    assert long.result is not None
    assert long.result["words"] == true_count(text)
    assert long.result["top"][0][1] >= long.result["top"][-1][1]
    pdf = docs["three.pdf"]
    assert pdf.result is not None
    assert pdf.status is DocumentStatus.DONE and pdf.result["pages"] == 3
    assert pdf.result["words"] == true_count(" ".join(pages))
    assert docs["empty.txt"].status is DocumentStatus.FAILED
    assert docs["empty.txt"].error_code == "empty_file"
    # Nothing goes to the chunk index, and no spool is left behind.
    assert await led.index.search("ledger", 5) == []
    assert os.listdir(led.settings.home / "spool") == []


def test_the_decorated_function_is_still_callable_and_checked() -> None:
    chunks = iter(
        [ChunkRecord(0, "one two three", 0, 13, None), ChunkRecord(1, "three four", 8, 18, None)]
    )
    assert word_count(None, chunks)["words"] == 4  # type: ignore[arg-type]

    async def not_sync(doc: object, chunks: object) -> None: ...

    def local(doc: object, chunks: object) -> None: ...

    for bad in (not_sync, local):
        with pytest.raises(InvalidInput):
            with_extracted_text(bad)


@pytest.mark.timeout(120)
def test_example_script_runs_on_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# Title\n\nalpha beta beta gamma", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LEDGER_HOME": str(tmp_path / "home")}
    env.pop("LEDGER_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "word_count_processor.py"), str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
        check=True,
    )
    assert "'words': 5" in done.stdout and "['beta', 2]" in done.stdout
