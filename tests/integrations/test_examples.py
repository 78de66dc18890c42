"""The RAG examples run as programs against the real ledger server, as a user runs them: the
server and key from LEDGER_URL and LEDGER_API_KEY, cited sources printed, exit 0; a wrong
key is one line on stderr and exit 1, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.embed.server import MODEL
from tests.integrations.conftest import LIBRARY, WORD, Corpus

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = ["rag_langchain.py", "rag_llamaindex.py"]


def run(
    corpus: Corpus, example: str, *args: str, key: str = "acme"
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "LEDGER_URL": corpus.server.base_url,
        "LEDGER_API_KEY": corpus.server.keys.get(key, key),
    }
    return subprocess.run(
        [sys.executable, str(REPO / "examples" / example), *args],
        env=env, capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_prints_cited_sources(corpus: Corpus, example: str) -> None:
    done = run(corpus, example, WORD, "-k", "3")
    assert done.returncode == 0, done.stderr
    assert "Sources (3):" in done.stdout
    for name in ("library/harbour.txt", "library/guide.md", "library/survey.pdf, page"):
        assert name in done.stdout, done.stdout
    assert "Context for a language model:" in done.stdout


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_hands_the_sources_to_your_llm(corpus: Corpus, example: str) -> None:
    hooked = run(
        corpus, example, WORD, "--mode", "hybrid", "--batch", LIBRARY,
        "--llm", "tests.integrations.answer_hook:answer",
    )  # fmt: skip
    assert hooked.returncode == 0, hooked.stderr
    assert f"For '{WORD}' the first source is [1]" in hooked.stdout


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_streams_a_batch(corpus: Corpus, example: str) -> None:
    extra = ["--model", MODEL] if example == "rag_llamaindex.py" else []
    done = run(corpus, example, "--load", LIBRARY, *extra)
    assert done.returncode == 0, done.stderr
    assert f"Batch {LIBRARY}: {len(corpus.chunk_ids)} " in done.stdout
    if extra:
        assert f"{len(corpus.chunk_ids)} with vectors" in done.stdout


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_help_and_a_wrong_key(corpus: Corpus, example: str) -> None:
    shown = run(corpus, example, "--help")
    assert shown.returncode == 0 and "LEDGER_API_KEY" in shown.stdout
    refused = run(corpus, example, WORD, key="lk_wrong")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: 401") and "Traceback" not in refused.stderr
    assert "lk_wrong" not in refused.stderr
