"""WAL checkpoints on a thread of their own, so that no commit ever runs one.

SQLite copies the write-ahead log back into the database file (a checkpoint) inside the
COMMIT that takes the log past 1,000 pages, with an fsync of the log and of the database
file: measured up to 58 ms. That is why commits used to go to the driver's thread, and the
hand-off cost every transaction about a quarter of a millisecond of the event loop's time
(far more while other processes keep the cores busy: the woken thread takes the CPU and the
loop waits to get it back). Here the process's connections run with
``wal_autocheckpoint = 0`` and a :class:`Checkpointer` thread, with a connection of its own,
runs a PASSIVE checkpoint whenever another connection committed since its last look, a few
times a second. A PASSIVE checkpoint never waits for, nor blocks, readers or the writer: it
copies what no reader still needs and leaves the rest for the next round, as the automatic
one did. A commit then only appends its pages to the log and can run on the loop's thread
(see ``sqlite_driver``).

Crash safety does not change: the log is the database until it is copied, SQLite replays it
on the next open, and the last connection to close checkpoints it as before.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

# How often the thread looks for committed pages to copy. At the ledger's highest write
# rates the log grows by a few MB between looks, the size the automatic checkpoint allowed.
INTERVAL_SECONDS = 0.2


class Checkpointer:
    """Runs PASSIVE checkpoints of one SQLite database file while started."""

    def __init__(self, path: str, *, interval: float = INTERVAL_SECONDS) -> None:
        self.path = path
        self.interval = interval
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread unless it runs (idempotent; called at every new connection)."""
        with self._lock:
            if self.running:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="ledger-wal-checkpoint", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it (a round under way finishes first)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self, stop: threading.Event) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        except sqlite3.Error as exc:
            log.error("WAL checkpoints of %s cannot run: %s", self.path, exc)
            return
        seen: int | None = None
        failing = False
        try:
            # Never wait for a lock: a busy round is simply tried again at the next one.
            conn.execute("PRAGMA busy_timeout = 0")
            while not stop.wait(self.interval):
                try:
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
                    if version == seen:
                        continue  # nobody committed since the last look
                    busy, logged, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if not busy and copied >= logged:
                        # All copied (or not in WAL mode at all: -1): nothing to look at
                        # until the next commit. Otherwise a reader still needed pages, or
                        # another process was checkpointing: try again at the next round.
                        seen = version
                    failing = False
                except sqlite3.Error as exc:
                    if "locked" in str(exc) or "busy" in str(exc):
                        continue  # another connection holds a lock for a moment: next round
                    if not failing:  # once per spell of trouble, not five times a second
                        log.warning("WAL checkpoint of %s failed (will retry): %s", self.path, exc)
                    failing = True
        finally:
            conn.close()
