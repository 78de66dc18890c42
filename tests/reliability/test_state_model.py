"""A model-based test of the real Ledger: random sequences of everything workers and people
do (submit, claim, heartbeat, finish, fail, a worker that vanishes, time passing, rescue,
pause, resume, retry), each on a fresh SQLite file, with the invariants checked in SQL
after every step."""

from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
import tempfile
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ledger.app import Ledger
from ledger.db import migrate
from ledger.db.engine import create_engine
from ledger.errors import Conflict, NotFound
from ledger.model import BatchSpec, ClaimedDocument, ErrorInfo, Outcome, SourceSpec
from tests.conftest import FakeClock, settings_for

T = TypeVar("T")

MAX_ATTEMPTS = 3
LEASE_SECONDS = 30.0
BATCHES = ("a", "b")
WORKERS = 2
STATUSES = ("pending", "running", "done", "failed", "skipped", "cancelled")

_template: dict[str, Path] = {}


def template_db() -> Path:
    """One migrated database file, copied for every example (migrating is the slow part)."""
    if "path" not in _template:
        path = Path(tempfile.mkdtemp(prefix="ledger-model-")) / "template.db"
        migrate.upgrade(f"sqlite+aiosqlite:///{path}")
        _template["path"] = path
    return _template["path"]


class LedgerModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="ledger-model-"))
        self.path = self.dir / "ledger.db"
        shutil.copy(template_db(), self.path)
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
        config = settings_for(
            f"sqlite+aiosqlite:///{self.path}",
            max_attempts=MAX_ATTEMPTS,
            lease_seconds=LEASE_SECONDS,
            breaker_window=4,
            breaker_threshold=1.0,
        )
        # A seeded generator: the claim's batch order and the backoff jitter must replay
        # identically when Hypothesis shrinks a failing sequence.
        self.ledger = Ledger(create_engine(config), config, clock=self.clock, rng=random.Random(0))
        self.db = sqlite3.connect(self.path)
        self.workers: list[str] = []
        # What each worker believes it holds: document id -> its claim. A killed worker
        # forgets everything; the database must not.
        self.held: list[dict[int, ClaimedDocument]] = []
        self.zombies: list[tuple[str, ClaimedDocument]] = []  # claims of replaced workers
        self.done: set[int] = set()  # what the model says is done
        self.sources = 0

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.db.close()
        self.run(self.ledger.close())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def q(self, statement: str, *params: Any) -> list[Any]:
        return self.db.execute(statement, params).fetchall()

    # ------------------------------------------------------------------ rules

    @initialize()
    def start_workers(self) -> None:
        for _ in range(WORKERS):
            self.workers.append(self.run(self.ledger.workers.register(concurrency=4)))
            self.held.append({})
        # Work from the start, so that short runs reach claims and takeovers too.
        # (Rules without preconditions: a filtered rule makes Hypothesis retry draws.)
        for batch in BATCHES:
            self.submit(batch, 1)

    @rule(batch=st.sampled_from(BATCHES), n=st.integers(1, 3))
    def submit(self, batch: str, n: int) -> None:
        sources = [SourceSpec(f"/doc/{self.sources + i}") for i in range(n)]
        self.sources += n
        spec = BatchSpec(id=batch, processor="noop", max_attempts=MAX_ATTEMPTS)
        self.run(self.ledger.queue.submit(spec, sources))

    @rule(w=st.integers(0, WORKERS - 1), limit=st.integers(1, 4))
    def claim(self, w: int, limit: int) -> None:
        claimed = self.run(self.ledger.queue.claim(self.workers[w], limit))
        assert len(claimed) <= limit
        for doc in claimed:
            assert doc.id not in self.done, f"document {doc.id} is done and was claimed again"
            assert 1 <= doc.attempt <= MAX_ATTEMPTS
            # Whoever held it before is not told: it may still try to finish it.
            self.held[w][doc.id] = doc

    @rule(w=st.integers(0, WORKERS - 1))
    def stall_and_be_overtaken(self, w: int) -> None:
        """Worker ``w`` stalls past its leases and the other worker claims: the takeover
        whose loser must then be fenced off (too rare a sequence to leave to chance)."""
        self.clock.advance(LEASE_SECONDS + 1)
        self.claim(1 - w, 4)

    def _holds(self, worker: str, doc: ClaimedDocument) -> bool:
        """What the fence must decide: is this lease still the document's lease?"""
        row = self.q("SELECT status, lease_token, lease_owner FROM documents WHERE id = ?", doc.id)[
            0
        ]
        return tuple(row) == ("running", doc.lease_token, worker)

    @rule(w=st.integers(0, WORKERS - 1))
    def heartbeat(self, w: int) -> None:
        worker = self.workers[w]
        held = [(d.id, d.lease_token) for d in self.held[w].values()]
        holding = {d.id for d in self.held[w].values() if self._holds(worker, d)}
        lost = self.run(self.ledger.queue.heartbeat(worker, held))
        assert set(lost) == set(self.held[w]) - holding
        for doc_id in lost:
            del self.held[w][doc_id]
        for doc_id in self.held[w]:
            # Kept leases are really extended, to now + lease.
            (expires,) = self.q("SELECT lease_expires_at FROM documents WHERE id = ?", doc_id)[0]
            assert _parse(expires) > self.clock.now

    def _complete(self, worker: str, doc: ClaimedDocument, outcome: Outcome) -> None:
        holds = self._holds(worker, doc)
        before = self.q("SELECT * FROM documents WHERE id = ?", doc.id)
        result = self.run(self.ledger.queue.complete(worker, [outcome]))
        if not holds:
            # Fenced: a lease that is gone changes nothing at all.
            assert result.lost == [doc.id] and result.recorded == []
            assert self.q("SELECT * FROM documents WHERE id = ?", doc.id) == before
            return
        assert result.recorded == [doc.id]
        if result.statuses[doc.id].value == "done":
            assert doc.id not in self.done
            self.done.add(doc.id)

    def _pick(self, claims: dict[int, ClaimedDocument], pick: int) -> ClaimedDocument:
        doc = list(claims.values())[pick % len(claims)]
        del claims[doc.id]
        return doc

    @rule(w=st.integers(0, WORKERS - 1), pick=st.integers(0, 7))
    def finish(self, w: int, pick: int) -> None:
        if self.held[w]:
            doc = self._pick(self.held[w], pick)
            self._complete(self.workers[w], doc, Outcome.done(doc, {"by": w}))

    @rule(
        w=st.integers(0, WORKERS - 1),
        pick=st.integers(0, 7),
        retryable=st.booleans(),
        systemic=st.booleans(),
    )
    def fail(self, w: int, pick: int, retryable: bool, systemic: bool) -> None:
        if self.held[w]:
            doc = self._pick(self.held[w], pick)
            error = ErrorInfo(
                code="boom", message="simulated", retryable=retryable, systemic=systemic
            )
            self._complete(self.workers[w], doc, Outcome.failed(doc, error))

    @rule(w=st.integers(0, WORKERS - 1))
    def kill_worker(self, w: int) -> None:
        """The worker vanishes (kill -9, or it froze): a new one takes its place. What the old
        one held is kept aside, in case it was only frozen and comes back to finish."""
        self.zombies.extend((self.workers[w], doc) for doc in self.held[w].values())
        self.held[w] = {}
        self.workers[w] = self.run(self.ledger.workers.register(concurrency=4))

    @rule(pick=st.integers(0, 7), done=st.booleans())
    def frozen_worker_returns(self, pick: int, done: bool) -> None:
        if not self.zombies:
            return
        worker, doc = self.zombies.pop(pick % len(self.zombies))
        error = ErrorInfo(code="late", message="late", retryable=True)
        outcome = Outcome.done(doc, {"late": True}) if done else Outcome.failed(doc, error)
        self._complete(worker, doc, outcome)

    @rule(seconds=st.sampled_from([0.5, 5.0, 29.0, 31.0, 61.0, 300.0]))
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def rescue(self) -> None:
        expired_before = self.q(
            "SELECT count(*) FROM documents WHERE status = 'running' AND lease_expires_at < ?",
            _fmt(self.clock.now),
        )[0][0]
        rescued = self.run(self.ledger.queue.rescue_expired())
        assert rescued == expired_before

    @rule(batch=st.sampled_from(BATCHES))
    def pause(self, batch: str) -> None:
        row = self.q(
            "SELECT state, n_pending + n_running, n_done + n_failed + n_skipped + n_cancelled"
            " FROM batches WHERE id = ?",
            batch,
        )
        finished = bool(row) and (row[0][0] == "cancelled" or (row[0][1] == 0 and row[0][2] > 0))
        try:
            self._control(self.ledger.control.pause(batch))
        except Conflict:
            assert finished, "only a complete or cancelled batch refuses a pause"
        else:
            assert not finished, "a complete or cancelled batch was paused"

    @rule(batch=st.sampled_from(BATCHES))
    def resume(self, batch: str) -> None:
        self._control(self.ledger.control.resume(batch))

    @rule(batch=st.sampled_from(BATCHES))
    def retry_failed(self, batch: str) -> None:
        failed = self.q(
            "SELECT count(*) FROM documents WHERE batch_id = ? AND status = 'failed'", batch
        )[0][0]
        count = self._control(self.ledger.control.retry_failed(batch))
        if count is not None:
            assert count == failed

    def _control(self, coro: Coroutine[Any, Any, T]) -> T | None:
        try:
            return self.run(coro)
        except NotFound:
            return None

    # ------------------------------------------------------------------ invariants

    @invariant()
    def one_state_each(self) -> None:
        total = self.q("SELECT count(*) FROM documents")[0][0]
        counted = self.q("SELECT count(*) FROM documents WHERE status IN (?,?,?,?,?,?)", *STATUSES)
        assert counted[0][0] == total

    @invariant()
    def done_means_one_result_and_one_done_attempt(self) -> None:
        bad = self.q(
            "SELECT d.id, d.result, (SELECT count(*) FROM attempts a WHERE a.document_id = d.id"
            " AND a.outcome = 'done') AS n FROM documents d"
            " WHERE (d.status = 'done' AND (d.result IS NULL OR n <> 1))"
            " OR (d.status <> 'done' AND n > 0)"
        )
        assert bad == []

    @invariant()
    def attempts_never_above_max(self) -> None:
        over = self.q(
            "SELECT d.id, d.attempts, (SELECT count(*) FROM attempts a WHERE a.document_id = d.id"
            " AND a.outcome <> 'released') FROM documents d JOIN batches b ON b.id = d.batch_id"
            " WHERE d.attempts > b.max_attempts"
        )
        assert over == []
        # Between two retry_failed the attempt rows of a document stay within max too.
        rows = self.q(
            "SELECT d.id, d.attempts, d.status FROM documents d WHERE d.status = 'running'"
            " AND d.attempts < 1"
        )
        assert rows == []

    @invariant()
    def counters_equal_group_by(self) -> None:
        for batch_id, *counters in self.q(
            "SELECT id, n_pending, n_running, n_done, n_failed, n_skipped, n_cancelled FROM batches"
        ):
            actual = dict(
                self.q(
                    "SELECT status, count(*) FROM documents WHERE batch_id = ? GROUP BY status",
                    batch_id,
                )
            )
            assert counters == [actual.get(s, 0) for s in STATUSES], (batch_id, counters, actual)

    @invariant()
    def running_means_a_lease(self) -> None:
        bad = self.q(
            "SELECT id FROM documents WHERE status = 'running' AND (lease_token IS NULL"
            " OR length(lease_token) <> 32 OR lease_owner IS NULL OR lease_expires_at IS NULL)"
        )
        assert bad == []
        not_running = self.q(
            "SELECT id FROM documents WHERE status <> 'running' AND (lease_token IS NOT NULL"
            " OR lease_owner IS NOT NULL OR lease_expires_at IS NOT NULL)"
        )
        assert not_running == []

    @invariant()
    def model_agrees_on_done(self) -> None:
        done = {i for (i,) in self.q("SELECT id FROM documents WHERE status = 'done'")}
        assert done == self.done


def _parse(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _fmt(value: datetime) -> str:
    """A time as the ledger stores it on SQLite (fixed-width UTC text)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


LedgerModel.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.slow
class TestLedgerModel(LedgerModel.TestCase):  # type: ignore[misc,valid-type]
    pass
