"""Moving a whole SQLite state into PostgreSQL (`dingtalk-bridge state migrate`): how a
single-host install becomes a state several replicas share, without losing what is queued.

Every table the SQLite state has is copied as it is (the backends have the same tables and
columns, store/pgschema.py), so nothing here knows what a table means: pending messages and dead
letters, the notification log, groups, silences and their Alertmanager links, acks, rate windows
and lockouts, work-notice tasks and results, replay and duplicate memories, tail offsets (with
their node ids, so the host resumes its files) and `meta`. The copy is all or nothing:

- the source must be idle: the copy holds SQLite's exclusive lock throughout, and a running
  bridge is found by it (leaving WAL mode needs every other connection gone), so messages can
  neither be sent twice (by the old daemon and the new replicas) nor accepted and left behind;
- the source must be at this code's schema version (an older one: start this bridge on it once;
  a newer one: use that bridge's migrate), and the target at it too (created or migrated first);
- the target must hold no data unless `force` (then it is replaced), and its tables are locked
  for the copy, so no replica writes in between;
- rows go in with COPY in one PostgreSQL transaction, and their counts are compared with the
  source's before it commits.

Every refusal is a `Refused` (what was found, what to do) raised before anything was written;
a failure during the copy is a `Failed`, and the transaction rolled back. The URL's password is
in neither: the target is always shown redacted, driver errors scrubbed of it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bridge.config.dburl import passwords, redacted
from bridge.store import postgres, schema
from bridge.store.migrations import VERSION_KEY
from bridge.store.pgschema import MIGRATION_LOCK
from bridge.store.silences import VERSION_KEY as SILENCES_VERSION_KEY
from bridge.store.sql import store_error
from bridge.store.statedir import StateError, integrity_problem

BUSY_SECONDS = 2.0  # how long the source's lock is waited for (a CLI reading it for a moment)
LOCK_TIMEOUT = "15s"  # how long the target's tables are waited for (replicas using them)
# Meta keys each database keeps for itself: its schema version, readiness's probe, and the
# silences' version (a random token that only tells a database's readers its silences moved).
META_LOCAL = (VERSION_KEY, "probe", SILENCES_VERSION_KEY)
_LOCAL_PG = ", ".join(["%s"] * len(META_LOCAL))
_LOCAL_SQLITE = ", ".join(["?"] * len(META_LOCAL))


class Refused(StateError):
    """Not done, nothing written: the message says what was found and what to do."""


class Failed(StateError):
    """The copy failed midway and was rolled back: the target holds what it held before."""


@dataclass(frozen=True)
class Copied:
    table: str
    rows: int
    detail: str = ""  # what the rows are, where it helps (the outbox: pending, dead, ...)


@dataclass
class Report:
    source: str
    target: str  # redacted
    version: int
    copied: list[Copied] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # source tables the target has not
    replaced: dict[str, int] = field(default_factory=dict)  # target rows removed (force)

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.copied)


def quoted(name: str) -> str:
    """An identifier for a statement (columns such as "offset" and "by" are reserved words)."""
    return '"' + name.replace('"', '""') + '"'


# -- the source ----------------------------------------------------------------------------------


@contextmanager
def idle_source(path: Path) -> Iterator[sqlite3.Connection]:
    """The SQLite state at `path`, locked against every other process while the block runs.

    Leaving WAL mode needs every other connection to the file closed: a running bridge (which
    keeps one open) makes it fail, which is how one is found. The exclusive transaction then
    keeps everyone out (a bridge started meanwhile cannot open it) until the copy is done; the
    file is put back in WAL mode after, as the bridge keeps it."""
    if not path.is_file():
        raise Refused(f"source {path}: no SQLite state database there")
    conn = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None)
    try:
        _lock(conn, path)
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")  # read only: nothing to keep
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA journal_mode=WAL")
        conn.close()


def _lock(conn: sqlite3.Connection, path: Path) -> None:
    try:
        problem = integrity_problem(conn)
        mode = conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
        if str(mode).lower() == "delete":
            conn.execute("BEGIN EXCLUSIVE")
    except sqlite3.Error as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise Refused(in_use(path)) from None
        raise Refused(f"source {path} cannot be used ({exc})") from None
    if problem:
        raise Refused(f"source {path} is corrupt ({problem}): salvage it first")
    if not conn.in_transaction:
        raise Refused(in_use(path))


def in_use(path: Path) -> str:
    return (
        f"source {path} is in use by another process (a running bridge holds it open): stop"
        " the bridge that uses it (systemctl stop dingtalk-bridge), then migrate"
    )


def source_version(conn: sqlite3.Connection, path: Path) -> int:
    """The source's schema version, refused unless it is this code's."""
    version = schema.schema_version(conn)
    if version == schema.SCHEMA_VERSION:
        return version
    if version is not None and version > schema.SCHEMA_VERSION:
        raise Refused(
            f"source {path} has schema version {version}, newer than this bridge's"
            f" ({schema.SCHEMA_VERSION}): run the migrate of the bridge version that wrote it"
        )
    raise Refused(
        f"source {path} has schema version {version or 'none'}, not this bridge's"
        f" ({schema.SCHEMA_VERSION}): start this version of the bridge on it once (it upgrades"
        " the file), stop it, then migrate"
    )


def source_tables(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """Each table of the source and its columns, in the order they were created."""
    names = [
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " ORDER BY rowid"
        )
    ]
    return {n: [c[1] for c in conn.execute(f"PRAGMA table_info({quoted(n)})")] for n in names}


def outbox_detail(conn: sqlite3.Connection) -> str:
    by_status = conn.execute(
        "SELECT status, COUNT(*) FROM outbox GROUP BY status ORDER BY status"
    ).fetchall()
    return ", ".join(f"{count} {status}" for status, count in by_status)


# -- the target ------------------------------------------------------------------------------------


def target_tables(conn: psycopg.Connection[Any]) -> dict[str, set[str]]:
    rows = conn.execute(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c"
        " JOIN information_schema.tables t"
        " ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
        " WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"
    ).fetchall()
    tables: dict[str, set[str]] = {}
    for table, column in rows:
        tables.setdefault(table, set()).add(column)
    return tables


def holding(conn: psycopg.Connection[Any], tables: list[str]) -> dict[str, int]:
    """The tables among `tables` that hold rows (`meta`: other than each database's own)."""
    found = {}
    for table in tables:
        where = f" WHERE key NOT IN ({_LOCAL_PG})" if table == "meta" else ""
        params = META_LOCAL if table == "meta" else ()
        row = conn.execute(f"SELECT COUNT(*) FROM {quoted(table)}{where}", params).fetchone()
        if row and row[0]:
            found[table] = int(row[0])
    return found


def copy_table(
    source: sqlite3.Connection, target: psycopg.Connection[Any], table: str, columns: list[str]
) -> int:
    """Every row of `table` (meta: but the database's own keys) with COPY; how many."""
    names = ", ".join(quoted(c) for c in columns)
    select = f"SELECT {names} FROM {quoted(table)}"
    params: tuple[str, ...] = ()
    if table == "meta":
        select += f" WHERE key NOT IN ({_LOCAL_SQLITE})"
        params = META_LOCAL
    count = 0
    with target.cursor() as cursor:
        with cursor.copy(f"COPY {quoted(table)} ({names}) FROM STDIN") as copy:
            for row in source.execute(select, params):
                copy.write_row(row)
                count += 1
        if table == "meta":
            return count
        row = target.execute(f"SELECT COUNT(*) FROM {quoted(table)}").fetchone()
        written = int(row[0]) if row else 0
        if written != count:
            raise Failed(f"table {table}: {count} rows read, {written} in the target after")
    return count


def migrate(source: Path, url: str, force: bool = False) -> Report:
    """Copy the SQLite state at `source` into the PostgreSQL database at `url` (see the module
    docstring); what was copied. Raises Refused or Failed."""
    where = redacted(url)
    secrets = passwords(url)
    with idle_source(source) as src:
        report = Report(str(source), where, source_version(src, source))
        tables = source_tables(src)
        try:
            with psycopg.connect(
                url, autocommit=True, connect_timeout=postgres.CONNECT_TIMEOUT
            ) as dst:
                postgres.migrate(dst, where)  # refuses a newer schema (StateError)
                with dst.transaction():
                    _copy(src, dst, tables, force, report)
        except psycopg.Error as exc:
            raise Failed(
                f"target {where}: {store_error(exc, secrets)} (nothing was written)"
            ) from None
        except Failed as exc:
            raise Failed(f"{exc} (rolled back: nothing was written)") from None
        except Refused:
            raise
        except StateError as exc:  # the target's schema is newer than this bridge
            raise Refused(str(exc)) from None
    return report


def _copy(
    src: sqlite3.Connection,
    dst: psycopg.Connection[Any],
    tables: dict[str, list[str]],
    force: bool,
    report: Report,
) -> None:
    # A replica still running on the target would make the locks below wait for its
    # transactions: wait a while, then fail (nothing written) rather than hang.
    dst.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    dst.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))  # no replica migrating
    existing = target_tables(dst)
    for table in existing:  # no replica writes until the copy commits
        dst.execute(f"LOCK TABLE {quoted(table)} IN ACCESS EXCLUSIVE MODE")
    found = holding(dst, sorted(existing))
    if found and not force:
        listed = ", ".join(f"{table} {rows} rows" for table, rows in found.items())
        raise Refused(
            f"target {report.target} already holds data ({listed}): migrate into an empty"
            " database, or give --force to replace what it holds with the source's"
        )
    for table in found:
        if table == "meta":
            dst.execute(f"DELETE FROM meta WHERE key NOT IN ({_LOCAL_PG})", META_LOCAL)
        else:
            dst.execute(f"DELETE FROM {quoted(table)}")
    report.replaced = found
    for table, columns in tables.items():
        if table not in existing:
            report.skipped.append(table)  # an older version's table (SQLite's sends, lockouts)
            continue
        missing = [c for c in columns if c not in existing[table]]
        if missing:  # cannot be at the same schema version: a bug, not the operator's doing
            raise Failed(f"table {table}: the target has no column {', '.join(missing)}")
        rows = copy_table(src, dst, table, columns)
        report.copied.append(Copied(table, rows, outbox_detail(src) if table == "outbox" else ""))
