"""Real files that are not documents, generated: what a built docs folder holds besides
pages; and a small tree for selection patterns."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path


def png_bytes() -> bytes:
    """A valid 1x1 PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def sphinx_inventory() -> bytes:
    """An ``objects.inv`` as Sphinx writes it: four text lines, then zlib data."""
    head = (
        b"# Sphinx inventory version 2\n# Project: demo\n# Version: 1.0\n"
        b"# The remainder of this file is compressed using zlib.\n"
    )
    return head + zlib.compress(b"pathlib py:module 0 library/pathlib.html#module-$ -\n")


def woff2_bytes() -> bytes:
    """The start of a WOFF2 font (its signature and header fields)."""
    return b"wOF2" + struct.pack(">IIHH", 0x00010000, 1024, 1, 0) + bytes(32)


# Name (relative to the folder) -> the excluded_type reason it must be skipped with.
NOT_DOCUMENTS: dict[str, str] = {
    "_images/logo.png": "excluded_type: PNG image",
    "_downloads/objects.json.gz": "excluded_type: GZ compressed file",
    "objects.inv": "excluded_type: Sphinx inventory",
    "_static/searchindex.js": "excluded_type: JS web asset",
    "_static/style.css": "excluded_type: CSS web asset",
    "_static/fonts/inter.woff2": "excluded_type: WOFF2 font",
    "poetry.lock": "excluded_type: lock file",
    "_images/diagram": "excluded_type: PNG image",  # no extension: judged by content
}
DOCUMENTS = ("index.html", "guide/usage.md", "notes.txt")
JS_TEXT = 'Search.setIndex({"docnames": ["pathlib"], "terms": {"search": [0], "pathlib": [0]}})\n'


def make_docs_folder(root: Path) -> dict[str, Path]:
    """A built documentation folder: three documents and one file of each excluded kind."""
    files: dict[str, bytes] = {
        "index.html": b"<html><head><title>Demo</title></head><body><p>Welcome to the demo "
        b"documentation about pathlib and paths.</p></body></html>",
        "guide/usage.md": b"# Usage\n\nCall the tool on a folder; it reads every page.\n",
        "notes.txt": b"Plain notes about releases and how they are made.\n",
        "_images/logo.png": png_bytes(),
        "_images/diagram": png_bytes(),
        "_downloads/objects.json.gz": gzip.compress(b"index.html\x00" * 100),
        "objects.inv": sphinx_inventory(),
        "_static/searchindex.js": JS_TEXT.encode(),
        "_static/style.css": b"body { font-family: Inter, sans-serif; }\n",
        "_static/fonts/inter.woff2": woff2_bytes(),
        "poetry.lock": b'[[package]]\nname = "pathspec"\nversion = "0.12.1"\n',
    }
    paths = {}
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths[name] = path
    return paths


TREE = ("top.pdf", "a/one.pdf", "a/b/two.pdf", "a/notes.txt", "readme.txt")


def make_tree(root: Path) -> Path:
    """Small files at three depths, for pattern tests: each holds its own relative path."""
    for relative in TREE:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(relative)
    return root
