"""Streaming chunker: pieces of text in, chunks with offsets out, in bounded memory.

A chunk is cut at the last paragraph break (a blank line) in the second half of its window,
else at the last sentence end, else at the last whitespace, else hard at ``size``. The next
chunk starts up to ``overlap`` characters before the end of the previous one, on a word
start when there is one. Chunks carry no leading or trailing whitespace.

Guarantees, for any split of the same text into pieces (the result does not depend on it):

- ``chunk.text == text[chunk.char_start:chunk.char_end]`` for the concatenated text;
- ``1 <= len(chunk.text) <= size``;
- consecutive chunks share at most ``overlap`` characters and leave no gap except
  whitespace, so every non-whitespace character is in some chunk;
- ``page`` is the page of the chunk's first character (None when the pieces have none).

Only about ``size`` characters plus one piece are held at a time.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator

import msgspec

_NON_SPACE = re.compile(r"\S")
_CJK_TERMINATORS = "\u3002\uff01\uff1f"
_TERMINATORS = ".!?\u2026" + _CJK_TERMINATORS
_CLOSERS = "\"'\u201d\u2019)]"
_LAST_SPACE = re.compile(r"\s\S*\Z")
_WORD_START = re.compile(r"\s\S")


class ChunkRecord(msgspec.Struct, frozen=True, array_like=True):
    """One chunk of a document's extracted text."""

    ordinal: int  # 0, 1, 2 ... in document order
    text: str
    char_start: int  # offsets into the document's extracted text; end is exclusive
    char_end: int
    page: int | None  # page of the first character (1-based), None for non-paged formats


def chunk_pieces(
    pieces: Iterable[tuple[str, int | None]], *, size: int, overlap: int
) -> Iterator[ChunkRecord]:
    """Cut the concatenation of ``pieces`` (text, page) into chunks, lazily."""
    if size < 1:
        raise ValueError("size must be at least 1")
    if not 0 <= overlap < size:
        raise ValueError("overlap must be at least 0 and less than size")
    buf = ""
    base = 0  # absolute offset of buf[0]
    start = 0  # index in buf where the next chunk starts (or whitespace before it)
    prev_end = 0  # absolute end of the last chunk given out
    ordinal = 0
    pages: deque[tuple[int, int | None]] = deque()  # (absolute offset, page) of the pieces

    def page_at(offset: int) -> int | None:
        while len(pages) > 1 and pages[1][0] <= offset:
            pages.popleft()
        return pages[0][1] if pages else None

    for piece, page in pieces:
        if not piece:
            continue
        # Compact: drop what is behind the chunk start, then append.
        buf, base = buf[start:] + piece, base + start
        start = 0
        pages.append((base + len(buf) - len(piece), page))
        start = _skip_space(buf, start)
        while len(buf) - start > size:
            end = _split_point(buf, start, size, overlap)
            text = buf[start:end].rstrip()
            chunk_end = start + len(text)
            if base + chunk_end > prev_end:
                yield ChunkRecord(
                    ordinal, text, base + start, base + chunk_end, page_at(base + start)
                )
                ordinal += 1
                prev_end = base + chunk_end
                start = _next_start(buf, start, end, chunk_end, overlap)
            else:
                # Everything up to ``end`` is already in the previous chunk or whitespace.
                start = end
            start = _skip_space(buf, start)
    if start < len(buf):
        text = buf[start:].rstrip()
        if text and base + start + len(text) > prev_end:
            yield ChunkRecord(
                ordinal, text, base + start, base + start + len(text), page_at(base + start)
            )


def _skip_space(buf: str, start: int) -> int:
    match = _NON_SPACE.search(buf, start)
    return match.start() if match else len(buf)


def _split_point(buf: str, start: int, size: int, overlap: int) -> int:
    """Where the chunk starting at ``start`` ends; looks only at buf[start : start + size + 1]."""
    hi = start + size  # the chunk may end here at the latest (exclusive end)
    lo = min(hi, start + max(size // 2, overlap + 1))
    paragraph = buf.rfind("\n\n", lo, hi + 1)
    if paragraph >= lo:
        return paragraph
    sentence = _sentence_end(buf, lo, hi)
    if sentence is not None:
        return sentence
    space = max(
        buf.rfind(" ", lo, hi + 1), buf.rfind("\n", lo, hi + 1), buf.rfind("\t", lo, hi + 1)
    )
    if space < lo:
        match = _LAST_SPACE.search(buf, lo, hi + 1)  # other Unicode whitespace; rare
        space = match.start() if match else -1
    if space > start:
        return space
    return hi


def _sentence_end(buf: str, lo: int, hi: int) -> int | None:
    """The last end of a sentence in [lo, hi]: after . ! ? (and closing quotes) followed by
    whitespace, or after CJK full stops. str.rfind per mark: a regex is 20 times slower."""
    right = hi
    while right >= lo:
        mark = max(buf.rfind(ch, lo - 1, right) for ch in _TERMINATORS)
        if mark < 0:
            return None
        end = mark + 1
        while end < hi and buf[end] in _CLOSERS:
            end += 1
        if lo <= end <= hi and (buf[mark] in _CJK_TERMINATORS or buf[end].isspace()):
            return end
        right = mark
    return None


def _next_start(buf: str, start: int, end: int, chunk_end: int, overlap: int) -> int:
    """Start of the next chunk: ``overlap`` characters back from ``chunk_end``, on a word."""
    if overlap == 0:
        return end
    candidate = max(chunk_end - overlap, start + 1)
    if candidate >= chunk_end:
        return end
    word = _WORD_START.search(buf, candidate - 1, chunk_end)
    if word is not None:
        return word.start() + 1
    return candidate
