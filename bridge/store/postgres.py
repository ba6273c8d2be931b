"""The PostgreSQL backend of the `Store` protocol: the state in a database a replica shares.

`PostgresStore` runs the table families' statements (outbox.py, alertlog.py, ...: the same SQL
as on SQLite, see sql.py) on connections of a psycopg pool. Every transaction is explicit: the
pool's connections are in autocommit, `transaction()` opens BEGIN ... COMMIT on one of them
(rolled back when the block raises), and `reading()` runs each statement on its own, so each
read sees committed data.

When the database is unreachable or restarting, a transaction raises StoreError (an
OperationalError) within `timeout` seconds, so the intake answers 503 and the sender retries
later; the pool checks a connection before handing it out and reconnects in the background, so
the store works again by itself once the database is back.

The password of the URL never leaves: errors are scrubbed of it, and the URL is shown redacted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from bridge.config.dburl import passwords, redacted
from bridge.errors import StoreError
from bridge.store import migrations
from bridge.store.locks import AdvisoryLocks
from bridge.store.pglisten import Listener
from bridge.store.pgschema import MIGRATION_LOCK, STEPS
from bridge.store.records import Readiness
from bridge.store.sql import SqlTx, readiness, store_error
from bridge.store.sqlconn import POSTGRESQL
from bridge.store.statedir import StateError

log = logging.getLogger("bridge.store")

CONNECT_TIMEOUT = 5  # seconds for one connection attempt (libpq's connect_timeout)
# While the database is known to be out of reach, how long a transaction waits for a connection
# before it gives up (the intake answers 503 at once instead of after the full timeout).
WAIT_WHILE_FAILING = 0.5
POOL_SIZE = 8  # connections at most: the HTTP threads, the senders, the pollers of one process


@lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    """The family modules' SQL for psycopg: `?` placeholders as `%s` (a literal % doubled
    first), and LIKE as ILIKE, since SQLite's LIKE ignores ASCII case (an id pasted in upper
    case finds the row on both backends)."""
    return sql.replace("%", "%%").replace("?", "%s").replace(" LIKE ", " ILIKE ")


class PgConnection:
    """One psycopg connection in the shape of sqlconn.Connection."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        return self._conn.execute(_placeholders(sql), tuple(parameters))

    def executemany(self, sql: str, parameters: Any, /) -> psycopg.Cursor[Any]:
        cursor = self._conn.cursor()
        cursor.executemany(_placeholders(sql), [tuple(p) for p in parameters])
        return cursor


def _schema_version(conn: psycopg.Connection[Any]) -> int | None:
    """The version recorded in `meta` (None: no schema yet)."""
    if conn.execute("SELECT to_regclass('meta')").fetchone()[0] is None:  # type: ignore[index]
        return None
    row = conn.execute(
        "SELECT value FROM meta WHERE key = %s", (migrations.VERSION_KEY,)
    ).fetchone()
    return int(row[0]) if row else None


def migrate(conn: psycopg.Connection[Any], where: str) -> int:
    """Bring the database's schema to this code's version, in one transaction, under an advisory
    lock (replicas starting together take turns); the version reached. Raises StateError for a
    database newer than this code."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        current = _schema_version(conn)
        steps = migrations.pending(current, STEPS, where)
        if steps:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        for step in steps:
            conn.execute(step.script.encode())  # several statements: no parameters
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (migrations.VERSION_KEY, str(step.version)),
            )
            log.info(f"state database schema migrated version={step.version} database={where}")
    return migrations.latest(STEPS)


class PostgresStore:
    """The state store in the PostgreSQL database at `url` (api.Store). Opening connects,
    migrates the schema, and raises StateError (what, where, what to do) when it cannot."""

    local = False  # every statement is a round trip to the server (api.Store)

    def __init__(self, url: str, timeout: float = 5.0, max_size: int = POOL_SIZE) -> None:
        self._url = url
        self._listener: Listener | None = None
        self.where = redacted(url)
        self._secrets = passwords(url)
        self._failing = False
        # One direct connection first: it says why it cannot connect (a wrong password, no
        # such database), where the pool would only time out; and it migrates the schema.
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
                migrate(conn, self.where)
        except psycopg.Error as exc:
            raise StateError(
                f"state database {self.where} cannot be used ({store_error(exc, self._secrets)}):"
                " is it running and reachable, and do the URL's user and password hold?"
            ) from None
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            timeout=timeout,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
            check=ConnectionPool.check_connection,
            name="bridge-state",
            open=False,
        )
        self.pool.open(wait=False)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """psycopg's errors raised inside as the store's, scrubbed of the password; a lost
        database marks the store failing until a transaction commits again."""
        try:
            yield
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError) and not self._failing:
                self._failing = True
                log.error(
                    f'state database unreachable database={self.where} error="'
                    f'{store_error(exc, self._secrets)}" (answering 503 until it is back)'
                )
            raise store_error(exc, self._secrets) from exc

    def _connection(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        """A pooled connection (checked first), waiting little while the database is away."""
        return self.pool.connection(timeout=WAIT_WHILE_FAILING if self._failing else None)

    @contextmanager
    def transaction(self, share_commit: bool = False) -> Iterator[SqlTx]:
        # share_commit is SQLite's: PostgreSQL flushes concurrent commits together itself.
        with self._errors(), self._connection() as conn, conn.transaction():
            adapted = PgConnection(conn)
            yield SqlTx(adapted, legacy=False, dialect=POSTGRESQL, locks=AdvisoryLocks(adapted))
        if self._failing:
            self._failing = False
            log.warning(f"state database reachable again database={self.where}")

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Each transaction commits by itself: PostgreSQL flushes concurrent commits together,
        and no request is served on the HTTP loop's thread (local is False)."""
        yield

    def after_commit(self, effect: Callable[[], None]) -> None:
        effect()  # (no batch: what this thread wrote is committed)

    @contextmanager
    def reading(self) -> Iterator[SqlTx]:
        with self._errors(), self._connection() as conn:
            yield SqlTx(PgConnection(conn), legacy=False, dialect=POSTGRESQL)

    def writable(self) -> bool:
        """Can it commit now? A real write, which a read-only standby refuses too."""
        try:
            with self._errors(), self._connection() as conn, conn.transaction():
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('probe', '1')"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                )
        except StoreError:
            return False
        return True

    def listen(self, queued: Callable[[str | None], None]) -> None:
        """One connection of its own LISTENs for enqueues of every replica (pglisten.py)."""
        if self._listener is None:
            self._listener = Listener(self._url, queued, self.where, self._secrets, CONNECT_TIMEOUT)
            self._listener.start()

    def wake_senders(self) -> None:
        """Nothing more to do: each enqueue NOTIFYs in its own transaction (sqlconn.Dialect)."""

    def probe(self, now: float) -> Readiness:
        return readiness(self, now, self.wakeups)

    @property
    def wakeups(self) -> str:
        return "listening" if self._listener is not None and self._listener.listening else "polling"

    @property
    def failing(self) -> bool:
        """The last transaction could not reach the database and none has committed since."""
        return self._failing

    def start_upkeep(self) -> None:
        """Nothing to keep: PostgreSQL manages its own WAL and vacuum."""

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        self.pool.close()


def verify_database(url: str, timeout: float = 5.0) -> str:
    """For `check`: can the database at `url` be reached, and is its schema this code's?
    Changes nothing. Returns what was found; raises StateError otherwise."""
    where = redacted(url)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=int(timeout)) as conn:
            current = _schema_version(conn)
    except psycopg.Error as exc:
        raise StateError(
            f"state database {where} cannot be reached ({store_error(exc, passwords(url))})"
        ) from None
    return f"state database {where}: reachable, {migrations.describe(current, STEPS, where)}"


@contextmanager
def read_only(url: str) -> Iterator[SqlTx | None]:
    """The state in the database at `url` in a read-only transaction (`render` beside running
    daemons: nothing can be written through it, and no migration runs), or None when the
    database holds no schema yet. Errors leave as StoreError, without the password."""
    secrets = passwords(url)
    try:
        conn = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT)
    except psycopg.Error as exc:
        raise store_error(exc, secrets) from exc
    try:
        conn.read_only = True
        with conn.transaction():
            if _schema_version(conn) is None:
                yield None
                return
            yield SqlTx(PgConnection(conn), legacy=False, dialect=POSTGRESQL)
    except psycopg.Error as exc:
        raise store_error(exc, secrets) from exc
    finally:
        conn.close()
