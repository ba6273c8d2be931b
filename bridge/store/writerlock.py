"""One writer at a time across processes, without SQLite's sleeps.

Several processes write one SQLite file when the daemon runs `server.workers: N` (and the CLI
writes beside it). SQLite lets a blocked writer wait by sleeping 1, 2, 5, 10, 15, 20, 25 ms and
so on between tries, while a commit here holds the lock for ~0.1-0.3 ms: with two workers a
conflicting commit lost a millisecond or several each time, and two processes served about what
one did (bench/README.md, issue 13). So writers first take an flock on a file beside the
database, and retry after 50 µs, doubling to 1 ms: the wait follows the holder closely, and
SQLite's own busy handler is only met by a writer that does not take this lock.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from pathlib import Path

FIRST_WAIT = 50e-6  # seconds before the first retry
LONGEST_WAIT = 1e-3  # seconds between retries at most


class WriterLock:
    """An exclusive flock on `path`, taken with a deadline. Not re-entrant, not thread-safe: the
    store's thread lock is held around it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._closed = False

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
            time.sleep(min(wait, max(deadline - time.monotonic(), 0.0)))
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                wait = min(wait * 2, LONGEST_WAIT)

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if not self._closed:  # a store may be closed twice (an orderly stop, then a test's)
            self._closed = True
            os.close(self._fd)
