"""Which files are not documents: the one definition ingest and its callers share.

A docs folder holds more than documents: images, fonts, scripts and style sheets, code
maps, Sphinx's ``objects.inv``, compressed files, lock files. Failing them as
``unsupported_type`` made every re-run of such a folder exit 1 and offer to retry errors
that no retry can fix, and reading ``.js`` as text put ``searchindex.js`` first in search
results. Such files are *skipped* with reason ``excluded_type: <what it is>`` instead.

Judged by name (:func:`excluded_by_name`: the upload's original name, or the path) and by
content (:func:`excluded_by_content`: the first bytes name an image, media, font or
archive format). No I/O here: callers pass the name and the bytes they already read.
"""

from __future__ import annotations

import os

EXCLUDED_TYPE = "excluded_type"

_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("image", ("png", "jpg", "jpeg", "gif", "webp", "bmp", "ico", "tif", "tiff", "svg")),
    ("font", ("woff", "woff2", "ttf", "otf", "eot")),
    ("web asset", ("js", "mjs", "cjs", "css")),
    ("source map", ("map",)),
    ("compressed file", ("gz", "tgz", "bz2", "xz", "zst", "7z", "rar", "zip", "tar")),
    ("media file", ("mp3", "mp4", "wav", "ogg", "flac", "avi", "mov", "mkv", "webm")),
    ("binary", ("exe", "dll", "so", "dylib", "o", "a", "class", "jar", "pyc", "whl", "bin")),
    ("database", ("db", "sqlite")),
    ("lock file", ("lock",)),
)
# Extensions of the office and e-book documents ingest reads (by their content): never
# excluded by name, whatever kinds are added above; their zip content is not an archive.
DOCUMENT_EXTENSIONS = frozenset(
    {"pdf", "docx", "docm", "pptx", "pptm", "xlsx", "xlsm", "epub", "odt", "rtf"}
)
# Extension (without the dot, lower case) -> what it is, e.g. "png" -> "PNG image".
EXCLUDED_EXTENSIONS: dict[str, str] = {
    ext: f"{ext.upper()} {kind}" for kind, exts in _KINDS for ext in exts
}
# Whole file names (lower case) that are not documents whatever their extension.
EXCLUDED_NAMES: dict[str, str] = {
    "objects.inv": "Sphinx inventory",
    "package-lock.json": "lock file",
    "yarn.lock": "lock file",
    "pnpm-lock.yaml": "lock file",
    "poetry.lock": "lock file",
    "cargo.lock": "lock file",
    "composer.lock": "lock file",
    "gemfile.lock": "lock file",
    "uv.lock": "lock file",
    "pipfile.lock": "lock file",
    ".ds_store": "macOS folder metadata",
}
# Leading bytes of formats that are never documents (archives, media, fonts, images);
# detection refuses them too.
NOT_DOCUMENT_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"II*\x00", "TIFF image"),
    (b"MM\x00*", "TIFF image"),
    (b"\x00\x00\x01\x00", "ICO image"),
    (b"RIFF", "RIFF media file"),
    (b"\x1f\x8b", "gzip archive"),
    (b"BZh", "bzip2 archive"),
    (b"\xfd7zXZ\x00", "xz archive"),
    (b"(\xb5/\xfd", "zstd archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!\x1a\x07", "RAR archive"),
    (b"OggS", "Ogg media file"),
    (b"fLaC", "FLAC audio"),
    (b"ID3", "MP3 audio"),
    (b"\x1aE\xdf\xa3", "Matroska media file"),
    (b"wOFF", "web font"),
    (b"wOF2", "web font"),
    (b"OTTO", "OpenType font"),
    (b"\x00\x01\x00\x00\x00", "TrueType font"),
)


def excluded_by_name(name: str) -> str | None:
    """What the file called ``name`` (a path or a bare file name) is, when that is not a
    document: ``"PNG image"``, ``"lock file"``; None for a name that may be a document."""
    base = os.path.basename(name.replace("\\", "/")).lower()
    if base in EXCLUDED_NAMES:
        return EXCLUDED_NAMES[base]
    stem, ext = os.path.splitext(base)
    if not stem or not ext or ext[1:] in DOCUMENT_EXTENSIONS:
        return None
    return EXCLUDED_EXTENSIONS.get(ext[1:])


def excluded_by_content(head: bytes) -> str | None:
    """What a file whose first bytes are ``head`` is, when its format is an image, media,
    font or archive; None otherwise (documents, text, and binary of unknown format)."""
    if head[4:8] == b"ftyp":
        return "MP4 media file"
    for magic, what in NOT_DOCUMENT_MAGIC:
        if head.startswith(magic):
            return what
    return None


def excluded_reason(what: str) -> str:
    """The skip reason recorded for a file that is not a document."""
    return f"{EXCLUDED_TYPE}: {what}"
