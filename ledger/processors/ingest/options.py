"""What the ingest pipeline is told (``IngestOptions``) and the error codes it gives back."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ledger.errors import InvalidInput

KiB = 2**10
MiB = 2**20
GiB = 2**30


class IngestErrorCode(StrEnum):
    """Stable codes of the ``ProcessingError`` that ingest raises for a bad document."""

    EMPTY_FILE = "empty_file"  # zero bytes
    UNSUPPORTED_TYPE = "unsupported_type"  # binary or a format we do not read
    CORRUPT = "corrupt"  # the format is recognised but the file is broken
    ENCRYPTED = "encrypted"  # needs a password
    NO_TEXT = "no_text"  # readable, but nothing to index (a scanned PDF, an empty page)
    UNSAFE_ARCHIVE = "unsafe_archive"  # a zip-based document with ../, absolute or link members
    UNSAFE_XML = "unsafe_xml"  # XML that declares entities (billion laughs) or, in ODT, a DTD
    MISSING_EXTRA = "missing_extra"  # the format's library is an extra that is not installed
    # An archive or email over a whole-container cap (members, inflated bytes, tar stream
    # ratio, email size) or nested too deep: no child is created.
    ARCHIVE_TOO_LARGE = "archive_too_large"
    TOO_LARGE = "too_large"  # over a size, ratio, entry or character cap (or the memory limit)
    SOURCE_MISSING = "source_missing"  # the file is gone
    SOURCE_CHANGED = "source_changed"  # size, mtime or hash differ from what was expected
    UNREADABLE = "unreadable"  # not a regular file, or permission denied
    READ_ERROR = "read_error"  # an I/O error while reading (retryable)
    SPOOL_FAILED = "spool_failed"  # the chunk spool could not be written (retryable, systemic)


@dataclass(frozen=True, slots=True)
class IngestOptions:
    """Chunking parameters and the caps that bound the work one document may cause.

    Every cap turns an oversized or hostile input into ``PermanentError("too_large")``
    instead of an exhausted worker.
    """

    chunk_size: int = 1000  # characters per chunk, at most
    chunk_overlap: int = 150  # characters shared by consecutive chunks, at most
    max_file_bytes: int = 4 * GiB
    max_html_bytes: int = 64 * MiB  # HTML is parsed whole, so it gets a smaller cap
    max_html_depth: int = 256  # deeper elements are flattened (the parser is O(depth) per tag)
    # The zip caps of every zip-based format (DOCX, PPTX, XLSX, EPUB, ODT; named for the first).
    max_docx_inflated_bytes: int = 512 * MiB  # sum of the declared sizes of all zip members
    max_docx_ratio: int = 200  # inflated / compressed, for members over 1 MiB inflated
    max_docx_entries: int = 10_000
    max_pdf_pages: int = 20_000
    # Also per slide, sheet and chapter. A dense real page has about 5,000.
    max_chars_per_page: int = 2_000_000
    max_chars_per_document: int = 2**31
    # Cells an XLSX may make ingest visit (empty cells inside a row's span count): a sheet
    # of 10 million cells is about 1 GiB in Excel's own memory; ingest streams it in ~2 s.
    max_xlsx_cells: int = 10_000_000
    max_rtf_bytes: int = 64 * MiB  # RTF is converted whole, like HTML
    # Archives (zip, tar) and emails expand into child documents (containers.py).
    max_archive_members: int = 5_000  # members of one archive (directories not counted)
    max_archive_inflated_bytes: int = 2 * GiB  # all members of one archive or email
    max_archive_ratio: int = 100  # inflated / compressed per zip member (over 1 MiB)
    max_archive_depth: int = 3  # containers inside containers, the top-level one counted
    max_attachments: int = 100  # attachments of one email
    max_email_bytes: int = 64 * MiB  # an email is parsed whole
    read_block_bytes: int = 1 * MiB  # unit of streaming reads (and of decoded text pieces)
    sample_bytes: int = 64 * KiB  # what encoding detection looks at

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise InvalidInput("chunk_size must be at least 1")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise InvalidInput("chunk_overlap must be at least 0 and less than chunk_size")
        for name in (
            "max_file_bytes",
            "max_html_bytes",
            "max_html_depth",
            "max_docx_inflated_bytes",
            "max_docx_ratio",
            "max_docx_entries",
            "max_pdf_pages",
            "max_chars_per_page",
            "max_chars_per_document",
            "max_xlsx_cells",
            "max_rtf_bytes",
            "max_archive_members",
            "max_archive_inflated_bytes",
            "max_archive_ratio",
            "max_archive_depth",
            "max_attachments",
            "max_email_bytes",
            "read_block_bytes",
            "sample_bytes",
        ):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be positive")
