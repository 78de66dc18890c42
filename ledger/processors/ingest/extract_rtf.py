"""RTF: plain text with striprtf, after a check that the file is whole.

striprtf is a small, maintained pure-Python converter: control words, destinations it
must skip (font and colour tables, pictures, fields' instructions), ``\\'xx`` bytes in the
font's code page and ``\\u`` characters. It works on the whole text, so the file is capped
(``max_rtf_bytes``) and converted in the process pool under its timeout. striprtf
tolerates a file cut short; ingest does not index half a document silently: a file whose
groups are not all closed is ``corrupt``.
"""

from __future__ import annotations

import re

from striprtf.striprtf import rtf_to_text

from ledger.errors import PermanentError
from ledger.processors.ingest.options import IngestErrorCode
from ledger.processors.ingest.zip_guard import brief

_ESCAPES = re.compile(rb"\\[\\{}]")


def extract_rtf(data: bytes) -> str:
    """The text of the RTF document ``data`` (the caller caps its size).

    Raises ``PermanentError("corrupt")`` when a group is left open at the end (a truncated
    file) or the converter fails.
    """
    braces = _ESCAPES.sub(b"", data)
    if braces.count(b"{") > braces.count(b"}"):
        raise PermanentError(
            IngestErrorCode.CORRUPT,
            "the RTF ends inside an open group: the file is truncated",
        )
    del braces
    try:
        # RTF is 7-bit by its specification; stray 8-bit bytes are most often UTF-8 from
        # a generator that ignored that, else the Windows code page RTF defaults to.
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    try:
        plain: str = rtf_to_text(text, errors="replace")  # type: ignore[no-untyped-call]
    except MemoryError:
        raise
    except Exception as exc:  # the extractor boundary: a converter failure is a corrupt file
        raise PermanentError(
            IngestErrorCode.CORRUPT, f"the RTF cannot be read: {brief(exc)}"
        ) from exc
    return plain.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
