"""Plain text and Markdown: streaming decode with encoding detection.

The bytes arrive as an iterator of bounded blocks and leave as an iterator of bounded text
pieces, so a file of any size, even a single 50 MB line, is decoded in constant memory.
Markdown is kept as written: headings and lists are structure that embedding models read
well, and unchanged text keeps chunk offsets meaningful against the source file.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ledger.processors.ingest.detect import utf16_without_bom

# Longest BOM first: UTF-32-LE's BOM begins with UTF-16-LE's.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_FALLBACK_ENCODING = "cp1252"


@dataclass(frozen=True, slots=True)
class EncodingGuess:
    encoding: str  # a Python codec name, normalised (``utf-8``, ``utf-16-le``, ``cp1252``)
    bom_length: int  # bytes of byte-order mark to skip at the start
    how: str  # "bom", "utf-16 pattern", "utf-8", "utf-8 with errors", "detected", "fallback"


@dataclass(slots=True)
class DecodedText:
    """The chosen encoding and the decoded text, as pieces of at most one block each."""

    encoding: str
    pieces: Iterator[str]


def detect_encoding(sample: bytes) -> EncodingGuess:
    """Guess the encoding of a text from its first bytes.

    Order: byte-order mark; the NUL pattern of BOM-less UTF-16; valid UTF-8 (also when a few
    invalid bytes are mixed into mostly valid UTF-8); charset-normalizer for legacy
    encodings; cp1252 as the last resort (it maps nearly every byte to a character).
    """
    for bom, encoding in _BOMS:
        if sample.startswith(bom):
            return EncodingGuess(encoding, len(bom), "bom")
    utf16 = utf16_without_bom(sample)
    if utf16 is not None:
        return EncodingGuess(utf16, 0, "utf-16 pattern")
    try:
        # Not final: the sample may end in the middle of a multi-byte sequence.
        codecs.getincrementaldecoder("utf-8")("strict").decode(sample, final=False)
        return EncodingGuess("utf-8", 0, "utf-8")
    except UnicodeDecodeError:
        pass
    decoded = sample.decode("utf-8", errors="replace")
    invalid = decoded.count("\ufffd")
    valid_non_ascii = sum(1 for ch in decoded if ch > "\x7f") - invalid
    # Legacy 8-bit text almost never forms valid UTF-8 multi-byte sequences by chance, so
    # many valid ones mean UTF-8 with some damage (or some Latin-1 pasted in).
    if valid_non_ascii > 0 and invalid <= valid_non_ascii:
        return EncodingGuess("utf-8", 0, "utf-8 with errors")
    name = _legacy_encoding(sample)
    if name:
        return EncodingGuess(name, 0, "detected")
    return EncodingGuess(_FALLBACK_ENCODING, 0, "fallback")


def _legacy_encoding(sample: bytes) -> str:
    # Loaded here: UTF-8 and ASCII text, most text, never needs the detector.
    import charset_normalizer

    names = []
    lowest = None
    for match in charset_normalizer.from_bytes(sample):
        try:
            name = codecs.lookup(match.encoding).name
        except LookupError:
            continue
        if lowest is None:
            lowest = match.chaos
        if match.chaos <= lowest + 0.01:  # the matches come sorted, least chaos first
            names.append(name)
    # Western text often decodes without "chaos" in several code pages (cp1250 turns è into
    # č); windows-1252, the web's default for legacy text, wins such ties.
    if _FALLBACK_ENCODING in names:
        return _FALLBACK_ENCODING
    return names[0] if names else ""


def decode_text(blocks: Iterable[bytes], *, sample_bytes: int) -> DecodedText:
    """Detect the encoding on the first ``sample_bytes`` and decode all blocks lazily.

    Invalid bytes become U+FFFD, NUL characters are dropped and line ends become ``\\n``.
    The blocks are read once: the sampled ones are kept and decoded first.
    """
    iterator = iter(blocks)
    head: list[bytes] = []
    size = 0
    for block in iterator:
        head.append(block)
        size += len(block)
        if size >= sample_bytes:
            break
    sample = b"".join(head)[:sample_bytes]
    guess = detect_encoding(sample)
    return DecodedText(guess.encoding, _decode(head, iterator, guess))


def _decode(head: list[bytes], rest: Iterator[bytes], guess: EncodingGuess) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder(guess.encoding)(errors="replace")
    newlines = NewlineNormalizer()
    skip = guess.bom_length

    def chained() -> Iterator[bytes]:
        yield from head
        head.clear()
        yield from rest

    for block in chained():
        if skip:
            cut = min(skip, len(block))
            block, skip = block[cut:], skip - cut
        text = decoder.decode(block)
        if text:
            text = newlines.feed(text.replace("\x00", ""))
            if text:
                yield text
    text = newlines.feed(decoder.decode(b"", final=True).replace("\x00", ""))
    if text:
        yield text


class NewlineNormalizer:
    """Turns ``\\r\\n`` and lone ``\\r`` into ``\\n`` across piece boundaries."""

    def __init__(self) -> None:
        self._after_cr = False

    def feed(self, text: str) -> str:
        if not text:
            return text
        if self._after_cr and text.startswith("\n"):
            text = text[1:]  # the \r before it was already given out as \n
        self._after_cr = text.endswith("\r")
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        return text
