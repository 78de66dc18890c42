"""Document ingestion without a database: detect, extract, chunk, spool.

``process_file`` (in ``pipeline``) runs inside a ``ProcessPool`` child and turns one file
into an ``IngestOutcome`` plus a spool of ``ChunkRecord``s that the parent reads with
``iter_spool``. See docs/ingest.md for the formats, the caps and measured figures.

Libraries, and why:

- **pypdfium2** (PDFium, the PDF engine of Chrome) for PDF: a C++ engine that reads pages
  lazily from the file, tolerates damaged files the way a browser does, and extracts text
  much faster than the pure-Python pypdf with as good or better text (docs/ingest.md).
- **selectolax** with the lexbor engine for HTML: a fast C HTML5 parser whose tree we walk
  iteratively; several times faster than BeautifulSoup (docs/ingest.md).
- **python-docx** for DOCX: paragraphs and tables in document order, with its XML parser not
  resolving entities; a zip inspection with ``zipfile`` runs first to refuse bombs.
- **python-pptx** (PPTX, a page per slide), **openpyxl** in read-only mode (XLSX, a page
  per sheet, cells capped), **striprtf** (RTF) and **defusedxml** (the XML of EPUB and ODT,
  and openpyxl's): the ``office`` extra, loaded only for documents of their type. EPUB
  chapters go through the HTML extractor. Every zip-based format passes ``zip_guard`` first.
- **charset-normalizer** for the encoding of legacy text files (after BOMs, UTF-16 and
  UTF-8 are tried), on a sample only, so detection cost does not grow with the file.
- **msgspec** msgpack for the spool: compact, fast, typed decoding.
"""

from ledger.processors.ingest.chunking import ChunkRecord, chunk_pieces
from ledger.processors.ingest.detect import DocType, detect_type
from ledger.processors.ingest.options import IngestErrorCode, IngestOptions
from ledger.processors.ingest.pipeline import (
    IngestOutcome,
    StageTimings,
    process_file,
    sha256_file,
)
from ledger.processors.ingest.spool import SpoolCorrupt, iter_spool, remove_stale_partials
from ledger.processors.ingest.user import with_extracted_text

__all__ = [
    "ChunkRecord",
    "DocType",
    "IngestErrorCode",
    "IngestOptions",
    "IngestOutcome",
    "SpoolCorrupt",
    "StageTimings",
    "chunk_pieces",
    "detect_type",
    "iter_spool",
    "process_file",
    "remove_stale_partials",
    "sha256_file",
    "with_extracted_text",
]
