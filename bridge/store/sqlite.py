"""The SQLite backend of the `Store` protocol: the embedded default, one file in the state dir.

`SqliteStore` wires the pieces: `Database` (db.py: the connection, its lock, WAL bounding and
full-disk recovery) and one module per table family (outbox.py, alertlog.py, ...), whose classes
run their SQL on that connection. There is one connection, serialised by the lock, so one `Tx`
serves every transaction; it is valid only inside the `with` block that handed it out.

SQLite's errors leave as bridge.errors.StoreError, under SQLite's own class names
(`OperationalError: database is locked`), so what callers log reads as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bridge.errors import StoreError
from bridge.store.alertlog import SqliteAcks, SqliteAlertLog, SqliteGroups
from bridge.store.db import Database
from bridge.store.duplicates import SqliteDuplicates
from bridge.store.notices import SqliteNotices
from bridge.store.outbox import SqliteOutbox
from bridge.store.ratewindows import SqliteRateWindows
from bridge.store.records import Readiness
from bridge.store.replays import SqliteReplays
from bridge.store.silences import SqliteSilences
from bridge.store.statedir import DB_NAME, connect_read_only
from bridge.store.tailstate import SqliteTailState


class DatabaseError(StoreError):
    """SQLite's DatabaseError (a corrupt or unusable file)."""


class OperationalError(StoreError):
    """SQLite's OperationalError (busy, locked, a full disk, an I/O error)."""


class IntegrityError(StoreError):
    """SQLite's IntegrityError (a constraint refused a row)."""


_NAMED: dict[str, type[StoreError]] = {
    cls.__name__: cls for cls in (DatabaseError, OperationalError, IntegrityError)
}


def store_error(exc: sqlite3.Error) -> StoreError:
    """`exc` as the store's error, keeping SQLite's class name and message."""
    return _NAMED.get(type(exc).__name__, StoreError)(str(exc))


@contextmanager
def _store_errors() -> Iterator[None]:
    """SQLite's errors raised inside as the store's (the database has seen them first)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise store_error(exc) from exc


class SqliteTx:
    """The operations of a transaction on the store's connection (api.Tx)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.outbox = SqliteOutbox(conn)
        self.alertlog = SqliteAlertLog(conn)
        self.acks = SqliteAcks(conn)
        self.groups = SqliteGroups(conn)
        self.silences = SqliteSilences(conn)
        self.ratewindows = SqliteRateWindows(conn)
        self.notices = SqliteNotices(conn)
        self.tailstate = SqliteTailState(conn)
        self.replays = SqliteReplays(conn)
        self.duplicates = SqliteDuplicates(conn)


class SqliteStore:
    """The state store in `directory`/state.db (api.Store). Opening raises StateError, with
    the path and what to do, when the directory or the file cannot be used."""

    def __init__(self, directory: Path, synchronous: str = "normal", busy_timeout: float = 5.0):
        self.db = Database(directory, synchronous, busy_timeout)
        self._tx = SqliteTx(self.db.connection)

    @property
    def path(self) -> Path:
        return self.db.path

    @property
    def moved_aside(self) -> Path | None:
        """Where a corrupt database was moved on opening (None: it was not)."""
        return self.db.moved_aside

    @contextmanager
    def transaction(self) -> Iterator[SqliteTx]:
        with _store_errors(), self.db.transaction():
            yield self._tx

    @contextmanager
    def reading(self) -> Iterator[SqliteTx]:
        with _store_errors(), self.db.reading():
            yield self._tx

    def writable(self) -> bool:
        return self.db.writable()

    def probe(self) -> Readiness:
        with self.reading() as tx:
            depths = tx.outbox.depth()
            dead = tx.outbox.dead_count()
        return Readiness(self.writable(), dead, depths)

    @property
    def failing(self) -> bool:
        return self.db.failing

    def start_upkeep(self) -> None:
        self.db.start_upkeep()

    def close(self) -> None:
        self.db.close()


@contextmanager
def read_only(directory: Path) -> Iterator[SqliteTx | None]:
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
            yield SqliteTx(conn)
    finally:
        conn.close()
