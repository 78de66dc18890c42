"""The streaming chunker, by properties over generated texts and by examples."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.processors.ingest.chunking import ChunkRecord, chunk_pieces

TOKENS = ["word", "longerword", " ", " ", "\n", "\n\n", ". ", "! ", "? ", "。", "\t", "x" * 30]
texts = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=400).map("".join),
    st.text(max_size=1500),
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, list[int], int, int]:
    text = draw(texts)
    size = draw(st.integers(1, 300))
    overlap = draw(st.integers(0, size - 1))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=12)))
    return text, cuts, size, overlap


def split(text: str, cuts: list[int]) -> list[tuple[str, int | None]]:
    bounds = [0, *cuts, len(text)]
    return [(text[a:b], index) for index, (a, b) in enumerate(itertools.pairwise(bounds))]


def check_invariants(text: str, chunks: list[ChunkRecord], size: int, overlap: int) -> None:
    covered = [False] * len(text)
    for index, chunk in enumerate(chunks):
        assert chunk.ordinal == index
        assert chunk.text == text[chunk.char_start : chunk.char_end]
        assert 1 <= len(chunk.text) <= size
        assert chunk.text == chunk.text.strip()
        for i in range(chunk.char_start, chunk.char_end):
            covered[i] = True
        if index:
            previous = chunks[index - 1]
            assert chunk.char_start > previous.char_start
            assert chunk.char_end > previous.char_end
            if chunk.char_start <= previous.char_end:
                assert previous.char_end - chunk.char_start <= overlap
            else:
                assert text[previous.char_end : chunk.char_start].isspace()
    missed = [i for i, ch in enumerate(text) if not covered[i] and not ch.isspace()]
    assert missed == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_chunks_are_consistent_bounded_overlapping_and_cover_the_text(
    case: tuple[str, list[int], int, int],
) -> None:
    text, cuts, size, overlap = case
    chunks = list(chunk_pieces(split(text, cuts), size=size, overlap=overlap))
    check_invariants(text, chunks, size, overlap)
    # The split into pieces does not change the chunks (only where pieces start).
    whole = list(chunk_pieces([(text, None)], size=size, overlap=overlap))
    assert [(c.text, c.char_start, c.char_end) for c in chunks] == [
        (c.text, c.char_start, c.char_end) for c in whole
    ]
    # The page of a chunk is the page (here: the piece index) of its first character.
    bounds = [0, *cuts, len(text)]
    for chunk in chunks:
        owners = [
            i for i, (a, b) in enumerate(itertools.pairwise(bounds)) if a <= chunk.char_start < b
        ]
        assert chunk.page == owners[-1]


def test_prefers_paragraphs_then_sentences_then_spaces() -> None:
    first = "First paragraph is here and ends."
    second = "Second one follows with more words"
    chunks = list(chunk_pieces([(f"{first}\n\n{second}", None)], size=50, overlap=0))
    assert [c.text for c in chunks] == [first, second]

    text = "One sentence ends here. Another sentence goes on and on without an end"
    chunks = list(chunk_pieces([(text, None)], size=40, overlap=0))
    assert chunks[0].text == "One sentence ends here."

    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    chunks = list(chunk_pieces([(text, None)], size=20, overlap=0))
    assert all(not c.text.startswith(" ") and " " not in c.text[-1:] for c in chunks)
    assert [c.text for c in chunks][:2] == ["alpha beta gamma", "delta epsilon zeta"]

    chunks = list(chunk_pieces([("x" * 25, None)], size=10, overlap=0))
    assert [len(c.text) for c in chunks] == [10, 10, 5]


def test_overlap_starts_on_a_word() -> None:
    text = " ".join(f"w{i:03d}" for i in range(200))
    chunks = list(chunk_pieces([(text, None)], size=100, overlap=30))
    for previous, chunk in itertools.pairwise(chunks):
        shared = previous.char_end - chunk.char_start
        assert 0 < shared <= 30
        assert text[chunk.char_start - 1] == " "


def test_whitespace_only_gives_no_chunks() -> None:
    assert list(chunk_pieces([("  \n\n \t ", None), ("\n", None)], size=10, overlap=2)) == []
    assert list(chunk_pieces([], size=10, overlap=2)) == []


def test_streams_from_an_endless_iterator() -> None:
    def endless() -> Iterator[tuple[str, int | None]]:
        n = 0
        while True:
            yield f"Sentence number {n} is here. ", None
            n += 1

    first = list(itertools.islice(chunk_pieces(endless(), size=200, overlap=20), 50))
    assert len(first) == 50
    assert first[-1].ordinal == 49


def test_rejects_bad_parameters() -> None:
    import pytest

    with pytest.raises(ValueError, match="overlap"):
        list(chunk_pieces([("abc", None)], size=10, overlap=10))
    with pytest.raises(ValueError, match="size"):
        list(chunk_pieces([("abc", None)], size=0, overlap=0))
