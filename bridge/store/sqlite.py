"""The SQLite backend of the `Store` protocol: the embedded default, one file in the state dir.

`SqliteStore` wires the pieces: `Database` (db.py: the connection, its lock, WAL bounding and
full-disk recovery) and one module per table family (outbox.py, alertlog.py, ...), whose classes
run their SQL on that connection. There is one connection, serialised by the lock, so one `Tx`
serves every transaction; it is valid only inside the `with` block that handed it out.

SQLite's errors leave as bridge.errors.StoreError, under SQLite's own class names
(`OperationalError: database is locked`), so what callers log reads as before.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bridge.store.db import Database
from bridge.store.fifo import FifoListener, open_fifo, poke
from bridge.store.records import Readiness
from bridge.store.sql import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    SqlTx,
    readiness,
    store_error,
)
from bridge.store.statedir import DB_NAME, connect_read_only

__all__ = ["DatabaseError", "IntegrityError", "OperationalError", "SqliteStore"]

QUEUED_SUFFIX = "-queued"  # the senders' wake-up FIFO beside the database (store/fifo.py)


@contextmanager
def _store_errors() -> Iterator[None]:
    """SQLite's errors raised inside as the store's (the database has seen them first)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise store_error(exc) from exc


class SqliteStore:
    """The state store in `directory`/state.db (api.Store). Opening raises StateError, with
    the path and what to do, when the directory or the file cannot be used."""

    local = True  # a file on this host: a transaction waits for no network (api.Store)

    def __init__(self, directory: Path, synchronous: str = "normal", busy_timeout: float = 5.0):
        self.db = Database(directory, synchronous, busy_timeout)
        self._tx = SqlTx(self.db.connection)
        self._fifo: int | None = None  # the senders' wake-up FIFO (None: none, or not yet)
        self._fifo_tried = False
        self._listener: FifoListener | None = None

    @property
    def path(self) -> Path:
        return self.db.path

    @property
    def moved_aside(self) -> Path | None:
        """Where a corrupt database was moved on opening (None: it was not)."""
        return self.db.moved_aside

    @contextmanager
    def transaction(self, share_commit: bool = False) -> Iterator[SqlTx]:
        with _store_errors(), self.db.transaction(share_commit):
            yield self._tx

    @contextmanager
    def reading(self) -> Iterator[SqlTx]:
        with _store_errors(), self.db.reading():
            yield self._tx

    @contextmanager
    def batch(self) -> Iterator[None]:
        with _store_errors(), self.db.batch():
            yield

    def after_commit(self, effect: Callable[[], None]) -> None:
        self.db.after_commit(effect)

    def writable(self) -> bool:
        return self.db.writable()

    def listen(self, queued: Callable[[str | None], None]) -> None:
        """The processes that write this file and send nothing themselves (the HTTP workers
        when `server.background_worker` sends) wake this one through the FIFO `state.db-queued`
        (store/fifo.py); this process's own writers wake its senders in-process."""
        fd = self._queued_fifo()
        if self._listener is None and fd is not None:
            self._listener = FifoListener(fd, lambda: queued(None), "store-queued")
            self._listener.start()

    def wake_senders(self) -> None:
        fd = self._queued_fifo()
        if fd is not None:
            poke(fd)

    def _queued_fifo(self) -> int | None:
        if not self._fifo_tried:  # made on first use: a CLI command never makes it
            self._fifo_tried = True
            self._fifo = open_fifo(self.path.with_name(self.path.name + QUEUED_SUFFIX))
        return self._fifo

    def probe(self, now: float) -> Readiness:
        return readiness(self, now, self.wakeups)

    @property
    def wakeups(self) -> str:
        return "in-process" if self._listener is None else "fifo"

    @property
    def failing(self) -> bool:
        return self.db.failing

    def start_upkeep(self) -> None:
        self.db.start_upkeep()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        if self._fifo is not None:
            os.close(self._fifo)
            self._fifo = None
        self.db.close()


@contextmanager
def read_only(directory: Path) -> Iterator[SqlTx | None]:
    """The state in `directory` opened so nothing can be written through it (`render` beside a
    running daemon), or None when there is no database yet (the daemon has not run)."""
    path = directory / DB_NAME
    if not path.is_file():
        yield None
        return
    with _store_errors():
        conn = connect_read_only(path)
    try:
        with _store_errors():
            yield SqlTx(conn)
    finally:
        conn.close()
