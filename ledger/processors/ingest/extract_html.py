"""HTML: readable text with selectolax (the lexbor engine).

Script, style, navigation, header, footer, aside, noscript and template content is dropped;
block elements become paragraph breaks; table cells are joined with `` | `` and rows with
line breaks. The tree is walked iteratively, so nesting depth cannot overflow a stack.

Lexbor's tree builder spends time proportional to the depth of the open elements for each
new element (100,000 nested divs take about 30 s), so before parsing, elements nested deeper
than ``max_depth`` lose their tags (their text stays). Browsers cap depth the same way.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser, LexborNode

from ledger.errors import PermanentError
from ledger.processors.ingest.extract_text import detect_encoding
from ledger.processors.ingest.options import IngestErrorCode

_SKIPPED = frozenset(
    {
        "script", "style", "nav", "header", "footer", "aside", "noscript", "template",
        "head", "svg", "math", "iframe", "object", "embed", "canvas", "select", "datalist",
    }
)  # fmt: skip
_BLOCKS = frozenset(
    {
        "address", "article", "blockquote", "caption", "center", "dd", "details", "dialog",
        "dir", "div", "dl", "dt", "fieldset", "figcaption", "figure", "form", "h1", "h2", "h3",
        "h4", "h5", "h6", "hgroup", "hr", "legend", "li", "listing", "main", "menu", "ol", "p",
        "pre", "section", "summary", "table", "tbody", "tfoot", "thead", "ul", "xmp", "body",
        "html", "option", "optgroup",
    }
)  # fmt: skip
_CELLS = frozenset({"td", "th"})
# Elements that never have content, or whose end tag is optional: they do not deepen the
# tree in a way the depth guard needs to count.
_NOT_NESTING = frozenset(
    {
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr", "keygen", "frame", "basefont", "bgsound", "p", "li", "dt",
        "dd", "tr", "td", "th", "option", "optgroup", "rb", "rt", "rp", "rtc", "thead",
        "tbody", "tfoot", "colgroup", "caption", "html", "head", "body",
    }
)  # fmt: skip
_RAW_TEXT = frozenset(
    {"script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes"}
)
# What the depth scan steps over: a raw-text element with its content up to its end tag
# (group 1), a comment, or a start or end tag (group 2 "/" for an end tag, group 3 its name,
# group 4 the rest up to ``>``). An unterminated comment or raw text runs to the end.
_TOKENS = re.compile(
    r"<(" + "|".join(sorted(_RAW_TEXT)) + r")(?![A-Za-z0-9:-])[^>]*>.*?(?=</\1\b|\Z)"
    r"|<!--.*?(?:-->|\Z)"
    r"|<(/?)([A-Za-z][A-Za-z0-9:-]*)([^>]*>)?",
    re.I | re.S,
)
_META_CHARSET = re.compile(
    rb"<meta[^>]{0,512}?charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]{1,40})", re.I
)
_SPACES = re.compile(r"\s+")
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


@dataclass(slots=True)
class HtmlText:
    encoding: str
    pieces: Iterator[str]


def extract_html(data: bytes, *, max_depth: int, with_title: bool = True) -> HtmlText:
    """The readable text of an HTML document given as bytes (the caller caps their size).

    The encoding comes from a byte-order mark, else a ``<meta charset>`` in the first
    kilobyte, else detection as for plain text. The ``<title>`` comes first unless
    ``with_title`` is false (an EPUB repeats the book's title in every chapter). Raises
    ``PermanentError("corrupt")`` if the parser fails.
    """
    encoding = _html_encoding(data)
    text = data.decode(encoding, errors="replace").replace("\x00", "")
    if text.startswith("\ufeff"):
        text = text[1:]
    text = flatten_deep_nesting(text, max_depth)
    try:
        parser = LexborHTMLParser(text)
        paragraphs = _readable_text(parser, with_title)
    except MemoryError:
        raise
    except Exception as exc:  # the extractor boundary: a parser failure is a corrupt file
        raise PermanentError(IngestErrorCode.CORRUPT, f"HTML could not be parsed: {exc!r}") from exc
    return HtmlText(encoding, _join(paragraphs))


def _join(paragraphs: list[str]) -> Iterator[str]:
    for index, paragraph in enumerate(paragraphs):
        yield paragraph if index == 0 else "\n\n" + paragraph


def _html_encoding(data: bytes) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    declared = _META_CHARSET.search(data[:1024])
    if declared is not None:
        try:
            name = codecs.lookup(declared.group(1).decode("ascii")).name
        except LookupError:
            name = ""
        # The HTML standard reads a declared UTF-16 as UTF-8 (the bytes we just matched were
        # ASCII, so it cannot really be UTF-16), and treats latin-1 as windows-1252.
        if name.startswith("utf-16"):
            return "utf-8"
        if name in ("latin-1", "iso8859-1", "ascii"):
            return "cp1252"
        if name:
            return name
    return detect_encoding(data[: 64 * 1024]).encoding


def flatten_deep_nesting(html: str, max_depth: int) -> str:
    """Drop the tags (not the text) of elements nested deeper than ``max_depth``.

    A linear scan that approximates the tree builder: void elements, elements with optional
    end tags and raw-text elements do not count; an end tag closes the nearest matching
    open element among the top 64. Returns ``html`` unchanged when nothing is that deep.
    """
    stack: list[tuple[str, bool]] = []  # (tag name, tags removed)
    kept = 0
    removals: list[tuple[int, int]] = []
    # One pass of a regular expression (comments and raw text are skipped whole, in C):
    # the scan runs over every page, and stepping through it in Python took half the time
    # of reading an HTML file.
    for token in _TOKENS.finditer(html):
        name = token[3]
        if name is None:  # a comment, or a raw-text element with its content
            continue
        rest = token[4]
        if rest is None:  # a tag with no ``>`` after it: nothing further is a tag
            break
        name = name.lower()
        if token[2]:  # an end tag; most close the element opened last
            if stack and stack[-1][0] == name:
                _, removed = stack.pop()
                if removed:
                    removals.append(token.span())
                else:
                    kept -= 1
                continue
            for index in range(len(stack) - 1, max(len(stack) - 65, -1), -1):
                if stack[index][0] == name:
                    if stack[index][1]:
                        removals.append(token.span())
                    kept -= sum(1 for _, removed in stack[index:] if not removed)
                    del stack[index:]
                    break
        elif name in _NOT_NESTING or rest[-2:-1] == "/":
            continue
        elif kept >= max_depth:
            removals.append(token.span())
            stack.append((name, True))
        else:
            stack.append((name, False))
            kept += 1
    if not removals:
        return html
    parts: list[str] = []
    previous = 0
    for start, end in removals:
        parts.append(html[previous:start])
        parts.append(" ")
        previous = end
    parts.append(html[previous:])
    return "".join(parts)


class _Builder:
    """Collects text into paragraphs, collapsing whitespace outside ``<pre>``."""

    def __init__(self) -> None:
        self.paragraphs: list[str] = []
        self._line: list[str] = []
        self._lines: list[str] = []
        self.pre = 0

    def text(self, text: str) -> None:
        if not self.pre:
            text = _SPACES.sub(" ", text)
            if text == " " and not self._line:
                return
        self._line.append(text)

    def cell(self) -> None:
        if "".join(self._line).strip():
            self._line.append(" | ")

    def newline(self) -> None:
        line = "".join(self._line)
        self._line.clear()
        self._lines.append(line if self.pre else line.strip())

    def block(self) -> None:
        self.newline()
        paragraph = "\n".join(self._lines).strip("\n")
        self._lines.clear()
        if paragraph.strip():
            self.paragraphs.append(paragraph)


def _readable_text(parser: LexborHTMLParser, with_title: bool) -> list[str]:
    builder = _Builder()
    title = parser.css_first("title") if with_title else None
    if title is not None:
        builder.text(title.text())
        builder.block()
    root = parser.body or parser.root
    if root is None:
        return builder.paragraphs
    root_id = root.mem_id
    node: LexborNode | None = root.child
    while node is not None:
        if _enter(node, builder):
            child = node.child
            if child is not None:
                node = child
                continue
            _leave(node, builder)
        while True:
            sibling = node.next
            if sibling is not None:
                node = sibling
                break
            parent = node.parent
            if parent is None or parent.mem_id == root_id:
                node = None
                break
            node = parent
            _leave(node, builder)
    builder.block()
    return builder.paragraphs


def _enter(node: LexborNode, builder: _Builder) -> bool:
    """Handle the start of ``node``; True when its children should be visited."""
    if node.is_text_node:
        text = node.text_content
        if text:
            builder.text(text)
        return False
    if not node.is_element_node:
        return False
    tag = node.tag or ""
    if tag in _SKIPPED:
        return False
    if tag in _BLOCKS:
        builder.block()
    elif tag == "br":
        builder.newline()
    elif tag in _CELLS:
        builder.cell()
    if tag == "pre":
        builder.pre += 1
    return True


def _leave(node: LexborNode, builder: _Builder) -> None:
    tag = node.tag or ""
    if tag in _BLOCKS:
        builder.block()
    elif tag == "tr":
        builder.newline()
    if tag == "pre":
        builder.pre -= 1
