"""User processors that get a document's extracted text: ``with_extracted_text``.

::

    from ledger.processors.ingest import with_extracted_text

    @with_extracted_text
    def word_count(doc, chunks):          # doc: the leased document; chunks: an iterator
        ...                               # of ChunkRecord(ordinal, text, char_start,
        return {"words": n}               # char_end, page), in document order

Run it with ``--processor mymodule:word_count``. The ledger reads, detects and extracts the
file exactly as the ``ingest`` processor does (same formats, caps, error codes; batch
options ``chunk_size``, ``chunk_overlap`` and the other ``IngestOptions`` fields apply) and
calls the function in a process-pool child (time and memory limits apply to both), with
the chunks streamed from disk. Nothing is stored in the chunk index: what the function
returns (a dict, None, ``Done`` or ``Skip``, without a ``write``) is the document's result.
Raise ``RetryableError``/``PermanentError`` to fail the document with a code.

Consecutive chunks overlap by up to ``chunk_overlap`` characters; use ``char_start`` and
``char_end`` to see each character once (or set ``chunk_overlap`` to 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import os
from collections.abc import Callable, Iterator
from typing import Any

from ledger.errors import InvalidInput
from ledger.model import JSON
from ledger.processors.base import (
    FACTORY_ATTRIBUTE,
    Document,
    Processor,
    ProcessorContext,
    ProcessorOutput,
    _as_output,
    load_object,
)
from ledger.processors.ingest.chunking import ChunkRecord
from ledger.processors.ingest.options import IngestOptions
from ledger.processors.ingest.pipeline import process_file
from ledger.processors.ingest.spool import iter_spool

UserFunction = Callable[[Document, Iterator[ChunkRecord]], Any]
_FIELDS = {f.name for f in dataclasses.fields(IngestOptions)}


class ExtractedTextProcessor:
    """A user function marked to receive extracted text (made by ``with_extracted_text``).

    Calling it calls the function unchanged, so it stays easy to test on its own.
    """

    def __init__(self, fn: UserFunction) -> None:
        if inspect.iscoroutinefunction(fn):
            raise InvalidInput("with_extracted_text needs a plain (not async) function")
        module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
        # ``__main__`` is allowed here (a script that defines and submits its processor);
        # the worker imports the module by its name, where the check below passes.
        if module is None or "<locals>" in qualname:
            raise InvalidInput(
                "with_extracted_text needs a module-level function of an importable module"
            )
        self.__wrapped__ = fn
        self.target = f"{module}:{qualname}"
        functools.update_wrapper(self, fn)

    def __call__(self, doc: Document, chunks: Iterator[ChunkRecord]) -> Any:
        return self.__wrapped__(doc, chunks)

    def __ledger_factory__(self, context: ProcessorContext, options: JSON) -> Processor:
        if self.target.startswith("__main__:"):
            raise InvalidInput(f"{self.target}: name the processor by its module, not __main__")
        unknown = set(options) - _FIELDS
        if unknown:
            raise InvalidInput(f"unknown options for extracted text: {', '.join(sorted(unknown))}")
        ingest_options = IngestOptions(**options)
        from ledger.processors.ingest.files import resolve_source, spool_dir_for

        spool_dir = spool_dir_for(context)
        target = self.target

        async def run(doc: Document) -> ProcessorOutput:
            path = await asyncio.to_thread(resolve_source, doc.source, ())
            job = functools.partial(
                run_on_extracted_text,
                target,
                doc,
                path,
                options=ingest_options,
                spool_dir=spool_dir,
            )
            pool = context.pool
            if pool is not None:
                value = await pool.run(job, timeout=context.task_timeout)
            else:
                value = await asyncio.to_thread(job)
            return _as_output(value)

        return run


assert FACTORY_ATTRIBUTE == "__ledger_factory__"


def with_extracted_text(fn: UserFunction) -> ExtractedTextProcessor:
    """Mark ``fn(doc, chunks)`` as a processor that gets the document's extracted text."""
    return ExtractedTextProcessor(fn)


def _chunks(spool_path: str) -> Iterator[ChunkRecord]:
    for batch in iter_spool(spool_path, batch_size=256):
        yield from batch


def run_on_extracted_text(
    target: str, doc: Document, path: str, *, options: IngestOptions, spool_dir: str
) -> Any:
    """In a pool child: extract ``path`` to a spool, call the user function on its chunks,
    remove the spool. The function is found by name (its module attribute is the marker
    object, whose ``__wrapped__`` is the function)."""
    obj = load_object(target)
    fn = getattr(obj, "__wrapped__", obj)
    outcome = process_file(
        path,
        expected_size=doc.size,
        expected_mtime_ns=doc.mtime_ns,
        expected_sha256=doc.sha256,
        options=options,
        spool_dir=spool_dir,
    )
    try:
        return fn(doc, _chunks(outcome.spool_path))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(outcome.spool_path)
