"""One writer at a time across processes, without SQLite's sleeps.

Several processes write one SQLite file when the daemon runs `server.workers: N` (and the CLI
writes beside it). SQLite lets a blocked writer wait by sleeping 1, 2, 5, 10, 15, 20, 25 ms and
so on between tries, while a commit here holds the lock for ~0.1-0.3 ms: with two workers a
conflicting commit lost a millisecond or several each time, and two processes served about what
one did (bench/README.md, issue 13). So writers first take an flock on a file beside the
database, and retry after 50 µs, doubling to 1 ms: the wait follows the holder closely, and
SQLite's own busy handler is only met by a writer that does not take this lock.

Sleeping between tries still left the lock idle between a release and the next try (50 µs to
1 ms, against a hold of ~0.3 ms), and the holder's process, which tries again at once, usually
took it back first: two workers then served ~7% less than with a kernel-queued blocking flock,
which cannot give up after a deadline as a thread on the event loop must (store/waiting.py). So
a waiter also listens on a FIFO beside the lock, into which every release writes a byte: it
wakes as soon as the lock is let go, and retries after 1 ms when no byte comes (a holder killed
by a signal lets go without writing). Where the file system has no FIFOs, waiters sleep between
tries as before.
"""

from __future__ import annotations

import fcntl
import os
import select
import sqlite3
import time
from pathlib import Path

from bridge.store.fifo import drain, open_fifo, poke

FIRST_WAIT = 50e-6  # seconds before the first retry
LONGEST_WAIT = 1e-3  # seconds between retries at most
WAKE_SUFFIX = "-wake"  # the FIFO beside the lock file


class WriterLock:
    """An exclusive flock on `path`, taken with a deadline. Not re-entrant, not thread-safe: the
    store's thread lock is held around it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._closed = False
        self._wake = open_fifo(path.with_name(path.name + WAKE_SUFFIX))
        self._poll: select.poll | None = None
        if self._wake is not None:
            self._poll = select.poll()
            self._poll.register(self._wake, select.POLLIN)

    def acquire(self, timeout: float) -> None:
        """Raises sqlite3.OperationalError("database is locked"), as SQLite would, when another
        process holds the lock for longer than `timeout` seconds."""
        if not self.acquire_within(timeout):
            raise sqlite3.OperationalError("database is locked")

    def acquire_within(self, timeout: float) -> bool:
        """Take the lock if another process lets go of it within `timeout` seconds."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        deadline = time.monotonic() + timeout
        wait = FIRST_WAIT
        while True:
            # Emptied before the try: a release after a failed try leaves its byte to wake us.
            self._drain()
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._poll is not None:
                self._poll.poll(min(left, LONGEST_WAIT) * 1000)
            else:
                time.sleep(min(wait, left))
                wait = min(wait * 2, LONGEST_WAIT)

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        if self._wake is not None:
            # Full (nobody has waited for a while): a waiter empties it before it tries.
            poke(self._wake)

    def _drain(self) -> None:
        if self._wake is not None:
            drain(self._wake)

    def close(self) -> None:
        if not self._closed:  # a store may be closed twice (an orderly stop, then a test's)
            self._closed = True
            os.close(self._fd)
            if self._wake is not None:
                os.close(self._wake)
