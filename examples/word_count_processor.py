"""A user processor that gets each document's extracted text: words and the most common
ones, per document.

Run it on a folder, with the folder that holds ``examples/`` importable (PYTHONPATH)::

    python examples/word_count_processor.py ./docs

or name it as any batch's processor: ``--processor examples.word_count_processor:word_count``.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from ledger.errors import PermanentError
from ledger.model import BatchSpec, SourceSpec
from ledger.processors.base import Document
from ledger.processors.ingest import ChunkRecord, with_extracted_text

WORD = re.compile(r"\w+", re.UNICODE)
WORD_REST = re.compile(r"^\w+", re.UNICODE)


@with_extracted_text
def word_count(doc: Document, chunks: Iterator[ChunkRecord]) -> dict[str, object]:
    """Count the words of the document once each (chunks overlap: the offsets tell by how
    much), and keep the ten most common."""
    counts: Counter[str] = Counter()
    covered = 0  # the extracted text before this offset has been counted
    pages: set[int] = set()
    for chunk in chunks:
        skip = max(covered - chunk.char_start, 0)
        new_text = chunk.text[skip:]
        if 0 < skip <= len(chunk.text) and chunk.text[skip - 1].isalnum():
            new_text = WORD_REST.sub("", new_text)  # the rest of a word counted before
        counts.update(word.lower() for word in WORD.findall(new_text))
        covered = max(covered, chunk.char_end)
        if chunk.page is not None:
            pages.add(chunk.page)
    total = sum(counts.values())
    if total == 0:
        raise PermanentError("no_words", f"{doc.source} has no words")
    return {
        "words": total,
        "distinct": len(counts),
        "top": counts.most_common(10),
        "pages": len(pages) or None,
    }


def scan(folder: str) -> list[SourceSpec]:
    """Every file under ``folder``, with the size and time that tell later runs it changed."""
    found = []
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            st = path.stat()
            found.append(SourceSpec(str(path), size=st.st_size, mtime_ns=st.st_mtime_ns))
    return found


async def main(folder: str) -> None:
    """Submit every file under ``folder`` with this processor, work it, print results."""
    from ledger.app import Ledger
    from ledger.worker.runtime import Worker

    sources = await asyncio.to_thread(scan, folder)
    async with await Ledger.open(migrate=True) as ledger:
        submitted = await ledger.queue.submit(
            BatchSpec(processor="examples.word_count_processor:word_count"), sources
        )
        batch_id = submitted.batch.id
        await Worker(ledger, batch_ids=[batch_id]).run(until_complete=True)
        page = await ledger.reads.documents(batch_id, limit=1000)
        for doc in page.items:
            summary = doc.result if doc.result else f"{doc.status}: {doc.error_code}"
            print(doc.source, summary)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "."))
