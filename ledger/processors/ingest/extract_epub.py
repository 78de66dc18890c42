"""EPUB: the chapters in spine (reading) order, one page per chapter.

An EPUB is a zip: ``META-INF/container.xml`` names the package document (OPF), whose
manifest lists the files and whose spine lists the chapters in reading order. The small
XML files are parsed with defusedxml (entity declarations refused); each chapter is
XHTML, read by the HTML extractor (lexbor does not expand entities declared in a DTD).
DRM is recognised before any chapter is read: ``META-INF/encryption.xml`` encrypting
anything but fonts (the IDPF and Adobe font obfuscations are not DRM), Adobe's
``rights.xml``, Apple's ``sinf.xml`` or a Readium LCP license. Call
``zip_guard.inspect_zip`` first; each chapter is inflated alone, capped like an HTML file.
"""

from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Iterator
from urllib.parse import unquote, urldefrag
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from ledger.errors import PermanentError
from ledger.processors.ingest.extract_html import extract_html
from ledger.processors.ingest.options import IngestErrorCode
from ledger.processors.ingest.paged import PagedText, capped_part, no_text
from ledger.processors.ingest.zip_guard import brief, open_zip, read_member

_FONT_OBFUSCATION = frozenset(
    {"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"}
)
_DRM_MARKERS = (
    ("META-INF/rights.xml", "Adobe"),
    ("META-INF/sinf.xml", "Apple"),
    ("META-INF/license.lcpl", "Readium LCP"),
)
_CHAPTER_TYPES = frozenset({"application/xhtml+xml", "text/html", "application/x-dtbook+xml"})
_SMALL_XML_BYTES = 16 * 2**20  # container, OPF and encryption.xml: kilobytes in real books


def extract_epub(path: str, *, max_chapter_bytes: int, max_depth: int, max_chars: int) -> PagedText:
    """Open the EPUB at ``path``; its chapter count and a lazy iterator of chapter texts.

    Raises ``PermanentError`` with ``encrypted`` (DRM), ``corrupt`` (no container or
    package document, a spine naming a missing file, broken XML or zip data),
    ``unsafe_xml`` (entity declarations), ``too_large`` (a chapter over
    ``max_chapter_bytes`` bytes or ``max_chars`` characters) and, once iterated to the end,
    ``no_text`` when no chapter had any text.
    """
    archive = open_zip(path, "EPUB")
    try:
        _refuse_drm(archive)
        chapters = _spine(archive)
    except BaseException:
        archive.close()
        raise
    return PagedText(
        len(chapters), _chapters(archive, chapters, max_chapter_bytes, max_depth, max_chars)
    )


def _refuse_drm(archive: zipfile.ZipFile) -> None:
    names = set(archive.namelist())
    for marker, who in _DRM_MARKERS:
        if marker in names:
            raise PermanentError(
                IngestErrorCode.ENCRYPTED, f"the EPUB is DRM-protected ({who}: {marker})"
            )
    if "META-INF/encryption.xml" not in names:
        return
    root = _xml(archive, "META-INF/encryption.xml")
    encrypted = [
        _attribute(data, "URI")
        for item in _all(root, "EncryptedData")
        if _attribute(_first(item, "EncryptionMethod"), "Algorithm") not in _FONT_OBFUSCATION
        for data in _all(item, "CipherReference")
    ]
    if encrypted:
        raise PermanentError(
            IngestErrorCode.ENCRYPTED,
            f"the EPUB is DRM-protected: META-INF/encryption.xml encrypts {len(encrypted)} "
            f"file(s), such as {encrypted[0]!r}",
        )


def _spine(archive: zipfile.ZipFile) -> list[str]:
    """The zip member names of the chapters, in reading order."""
    container = _xml(archive, "META-INF/container.xml")
    rootfile = _attribute(_first(container, "rootfile"), "full-path")
    if not rootfile:
        raise PermanentError(
            IngestErrorCode.CORRUPT, "the EPUB's container.xml names no package document"
        )
    package = _xml(archive, rootfile)
    base = posixpath.dirname(rootfile)
    manifest = {
        _attribute(item, "id"): (_attribute(item, "href"), _attribute(item, "media-type"))
        for item in _all(_first(package, "manifest"), "item")
    }
    chapters = []
    for ref in _all(_first(package, "spine"), "itemref"):
        href, media_type = manifest.get(_attribute(ref, "idref"), ("", ""))
        if not href:
            raise PermanentError(
                IngestErrorCode.CORRUPT,
                f"the EPUB's spine names {_attribute(ref, 'idref')!r}, not in its manifest",
            )
        if media_type in _CHAPTER_TYPES:
            chapters.append(posixpath.normpath(posixpath.join(base, unquote(urldefrag(href)[0]))))
    if not chapters:
        raise PermanentError(IngestErrorCode.CORRUPT, "the EPUB's spine lists no chapters")
    return chapters


def _chapters(
    archive: zipfile.ZipFile, chapters: list[str], max_bytes: int, max_depth: int, max_chars: int
) -> Iterator[tuple[str, int]]:
    found_text = False
    with archive:
        for number, name in enumerate(chapters, start=1):
            data = read_member(archive, name, "EPUB", max_bytes)
            # Chapters repeat the book's <title>; their own heading is in the body.
            text = "".join(extract_html(data, max_depth=max_depth, with_title=False).pieces)
            del data
            found_text = found_text or bool(text.strip())
            yield capped_part(text, number, "chapter", max_chars), number
    if not found_text:
        raise no_text("EPUB", len(chapters), "chapter")


def _xml(archive: zipfile.ZipFile, name: str) -> Element:
    data = read_member(archive, name, "EPUB", _SMALL_XML_BYTES)
    try:
        root: Element = fromstring(data, forbid_dtd=False, forbid_entities=True)
    except DefusedXmlException as exc:
        raise PermanentError(
            IngestErrorCode.UNSAFE_XML,
            f"the EPUB's {name} declares entities, refused: {brief(exc)}",
        ) from exc
    except (ParseError, ValueError) as exc:
        raise PermanentError(
            IngestErrorCode.CORRUPT, f"the EPUB's {name} is not well-formed XML: {brief(exc)}"
        ) from exc
    return root


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _all(parent: Element | None, name: str) -> list[Element]:
    if parent is None:
        return []
    return [element for element in parent.iter() if _local(element.tag) == name]


def _first(parent: Element | None, name: str) -> Element | None:
    found = _all(parent, name)
    return found[0] if found else None


def _attribute(element: Element | None, name: str) -> str:
    if element is None:
        return ""
    for key, value in element.attrib.items():
        if _local(key) == name:
            return value
    return ""
