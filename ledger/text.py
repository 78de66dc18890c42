"""Text that may not be UTF-8: file names from the operating system, rows written by other
programs. Python keeps such bytes as lone surrogates, which cannot be stored, sent as JSON
or printed; these helpers tell them apart and show them escaped."""

from __future__ import annotations

import os


def is_utf8(text: str) -> bool:
    """True when ``text`` can be encoded as UTF-8 (it holds no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escaped(text: str) -> str:
    """``text`` as printable UTF-8: bytes that are not UTF-8 shown as ``\\xff`` escapes."""
    if is_utf8(text):
        return text
    return os.fsencode(text).decode("utf-8", "backslashreplace")
