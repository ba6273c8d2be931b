"""What the SQL backends share: the connection the table families run their statements on, the
transaction bundle of those families, and the mapping of a driver's errors to the store's.

The table-family modules (outbox.py, alertlog.py, ...) hold every statement once, in SQL both
SQLite and PostgreSQL accept (upserts as `INSERT ... ON CONFLICT`, `?` placeholders, reserved
column names quoted); a backend hands them a `Connection`: sqlite3's own, or postgres.py's
adapter over psycopg. So a statement is written, and its semantics decided, in one place.
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge.errors import StoreError
from bridge.store.alertlog import SqlAcks, SqlAlertLog, SqlGroups
from bridge.store.alertstate import SqlAlertState
from bridge.store.api import Store
from bridge.store.appsends import SqlAppRobotSends
from bridge.store.cards import SqlCards
from bridge.store.duplicates import SqlDuplicates
from bridge.store.escalations import SqlEscalations
from bridge.store.history import SqlHistory
from bridge.store.keys import SqlKeys
from bridge.store.locks import Locks, WriterLocks
from bridge.store.notices import SqlNotices
from bridge.store.outbox import SqlOutbox
from bridge.store.ratewindows import SqlRateWindows
from bridge.store.records import Readiness
from bridge.store.replays import SqlReplays
from bridge.store.silences import SqlSilences
from bridge.store.sqlconn import SQLITE, Connection, Cursor, Dialect
from bridge.store.tailstate import SqlTailState

__all__ = ["Connection", "Cursor", "SqlTx", "readiness", "store_error"]


class DatabaseError(StoreError):
    """The database refused or could not run a statement (a corrupt or unusable database)."""


class OperationalError(StoreError):
    """The database could not do it now (busy, locked, a full disk, unreachable)."""


class IntegrityError(StoreError):
    """A constraint refused a row."""


_NAMED: dict[str, type[StoreError]] = {
    cls.__name__: cls for cls in (DatabaseError, OperationalError, IntegrityError)
}


def store_error(exc: Exception, scrub: Iterable[str] = ()) -> StoreError:
    """`exc` (a DB-API driver's error) as the store's, under the nearest DB-API class name
    (psycopg's UniqueViolation is an IntegrityError), with every string of `scrub` (a password)
    cut out of the message."""
    message = str(exc)
    for secret in scrub:
        if secret:
            message = message.replace(secret, "***")
    for cls in type(exc).__mro__:
        if cls.__name__ in _NAMED:
            return _NAMED[cls.__name__](message)
    return StoreError(message)


class SqlTx:
    """The operations of a transaction on one connection (api.Tx), by table family."""

    def __init__(
        self,
        conn: Connection,
        legacy: bool = True,
        dialect: Dialect = SQLITE,
        locks: Locks | None = None,
    ) -> None:
        """`dialect`: the SQL differences (store/sqlconn.py); `locks`: how a transaction makes
        other writers wait on a name (store/locks.py); SQLite's (nothing to take) by default."""
        locks = locks or WriterLocks()
        self.outbox = SqlOutbox(conn, dialect)
        self.alertlog = SqlAlertLog(conn, locks)
        self.acks = SqlAcks(conn)
        self.groups = SqlGroups(conn)
        self.silences = SqlSilences(conn)
        self.ratewindows = SqlRateWindows(conn, legacy, locks)
        self.notices = SqlNotices(conn, dialect)
        self.appsends = SqlAppRobotSends(conn)
        self.cards = SqlCards(conn)
        self.escalations = SqlEscalations(conn)
        self.history = SqlHistory(conn)
        self.tailstate = SqlTailState(conn)
        self.replays = SqlReplays(conn)
        self.duplicates = SqlDuplicates(conn)
        self.alertstate = SqlAlertState(conn, dialect, locks)
        self.keys = SqlKeys(conn)


def readiness(store: Store, now: float, wakeups: str = "in-process") -> Readiness:
    """The store's part of /-/ready, the same on every backend. A store that cannot even be
    read (a database out of reach) is not writable, and says nothing of its queues."""
    try:
        with store.reading() as tx:
            depths = tx.outbox.depth()
            dead = tx.outbox.dead_count()
            claimed = tx.outbox.claimed(now)
    except StoreError:
        return Readiness(False, 0, {}, wakeups=wakeups)
    return Readiness(store.writable(), dead, depths, claimed, wakeups)
