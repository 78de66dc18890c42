"""The processing of one claimed document: a task per document in a free slot, its outcome
put in the outbox for the committer."""

from __future__ import annotations

import asyncio
import logging
import time

from ledger import metrics, storage
from ledger.model import ClaimedDocument, Outcome
from ledger.processors.base import ProcessorOutput, processor_exit
from ledger.states import ErrorCode
from ledger.worker import outcome_prep
from ledger.worker.outcomes import clean_up, error_info, outcome_of
from ledger.worker.state import WorkerState
from ledger.worker.unreadable import check_row

log = logging.getLogger(__name__)


class DocumentRunner(WorkerState):
    """Starts prefetched documents in free slots and turns each into an outcome."""

    def _fill_slots(self) -> None:
        """Start prefetched documents in the free slots (not once stopping)."""
        while self._ready and len(self._tasks) < self.concurrency and not self._stopping:
            self._start(self._ready.popleft())

    def _release_ready(self) -> None:
        """Give back the documents leased ahead but never started (on stop)."""
        while self._ready:
            doc = self._ready.popleft()
            self._outbox.append((doc, Outcome.returned(doc)))
        self._outbox_changed.set()

    def _start(self, doc: ClaimedDocument) -> None:
        self.current[doc.id] = doc
        task = asyncio.create_task(self._process(doc), name=f"ledger-doc-{doc.id}")
        self._tasks[doc.id] = task

    async def _process(self, doc: ClaimedDocument) -> None:
        outcome: Outcome | None = None
        began = time.perf_counter()
        try:
            check_row(doc)
            processor = self.registry.get(self.context, doc.processor, doc.options)
            await storage.check_readable_async(doc.source, self.ledger.settings.storage)
            output: ProcessorOutput = await processor(doc)
            made = outcome_of(doc, output)
            if not outcome_prep.needs_preparing(made):
                outcome = made
            else:
                try:  # chunks read or staged now: the finish transaction reads no file
                    outcome = await outcome_prep.prepare(self.ledger, doc, made, self._inline)
                except BaseException:
                    clean_up([made])
                    raise
        except asyncio.CancelledError:
            if doc.id in self._force_release:
                outcome = Outcome.released(doc)
            # A lost lease: the new owner records the outcome, not us.
        except Exception as exc:  # the per-document boundary: becomes that document's error
            info = error_info(exc)
            if info.code == ErrorCode.EXCEPTION.value:
                log.warning("document %s (%s) raised %s", doc.id, doc.source, info.message)
            outcome = Outcome.failed(doc, info)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt ... from a processor
            # Raised on the event loop, it would stop this worker (and the server it runs in)
            # on every restart, as the document is claimed again: it fails this document only.
            log.warning("document %s (%s): processor raised %r", doc.id, doc.source, exc)
            outcome = Outcome.failed(doc, error_info(processor_exit(exc)))
        finally:
            self._tasks.pop(doc.id, None)
            self.current.pop(doc.id, None)
            self._force_release.discard(doc.id)
            if outcome is not None:
                took = time.perf_counter() - began
                self.pacing.processed(took)
                # The outcome is a str enum: its value is looked up only with metrics on.
                metrics.observe_processed(doc.processor, outcome.outcome, took)
            if outcome is not None and doc.id not in self._lost:
                self._outbox.append((doc, outcome))
                self._outbox_changed.set()
            elif outcome is not None:
                self._inline.give_back(doc.id, doc.lease_token)
                clean_up([outcome])
            self._lost.discard(doc.id)
            self._fill_slots()
            self._wake.set()
