"""The SQLite state store's database: one file in the state directory, in WAL mode.

It holds what must survive a restart or `kill -9`: the outbox (messages not yet delivered, and
dead letters), the notification log (what was sent, for dedup and repeat_interval), aggregation
groups, silences added at runtime, and recent send times (so a restart does not forget a robot's
rate window).

WAL with synchronous=NORMAL: a committed transaction survives the process being killed at any
moment (the OS has it); only a power cut can lose the last commits, which `synchronous: full`
in the config closes at the price of an fsync per commit.

One connection, shared under a lock: every statement here is short, and SQLite serialises
writers anyway. The CLI (`outbox`, `silence`) opens its own connection to the same file.

The WAL is kept small (a full disk must not be the WAL's doing, and a small disk must hold it):
SQLite checkpoints it and cuts the file back at a bound that follows the free space (a quarter of
it, between WAL_MIN and WAL_MAX), and the upkeep thread truncates it to nothing once writes
pause. A commit that failed for lack of space leaves no transaction open; the upkeep thread then
keeps checkpointing until one succeeds, so the store takes commits again as soon as there is
room, without a restart.

Opening says what is wrong, where, and what to do (`StateError`) when the state directory cannot
be used; a database file that is not a database, or is corrupt, is moved aside (kept for salvage)
and an empty one started, logged at error level with both paths.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bridge.store.schema import migrate
from bridge.store.statedir import (
    DB_NAME,
    SQLITE_IOERR,
    Corrupt,
    StateError,
    check_directory,
    describe_path,
    integrity_problem,
    is_corrupt,
    is_out_of_space,
    move_aside,
    result_code,
    unusable,
)
from bridge.store.writerlock import WriterLock

log = logging.getLogger("bridge.store")

# The WAL's bound. SQLite checkpoints (copies the WAL into the database, and the writer then
# starts the WAL over) every `wal_autocheckpoint` pages; the file keeps its largest size unless
# `journal_size_limit` cuts it back. 10,000 pages (40 MiB) here once let the WAL fill a 2 MiB disk
# alone. But each checkpoint ends with two fsyncs (~10-20 ms on this machine's disk, holding the
# store's lock, and every request behind it): a checkpoint per MiB took most of the ingest rate
# away. So the bound follows the room there is: at most a quarter of the free space (counting what
# the WAL holds), between WAL_MIN and WAL_MAX; upkeep adjusts it as the disk fills or empties.
# bench/README.md has the ingest figures.
WAL_MAX = 16 << 20  # bytes: the WAL's bound on a roomy disk (a checkpoint per 16 MiB written)
WAL_MIN = 128 << 10  # bytes: on a nearly full one (frequent checkpoints beat none)
WAL_SHARE = 4  # the WAL may take this fraction (1/4) of the free space
UPKEEP_INTERVAL = 1.0  # seconds between the upkeep thread's looks
IDLE_BEFORE_TRUNCATE = 2.0  # seconds without a commit before the WAL is truncated to nothing
CHECKPOINT_BUSY_MS = 200  # how long a truncating checkpoint waits for another process's reader


class Database:
    """The SQLite connection of the state store, its lock, and the WAL's upkeep. The store's
    operations are in bridge/store/sqlite.py (`SqliteStore`), on this connection."""

    def __init__(self, directory: Path, synchronous: str = "normal", busy_timeout: float = 5.0):
        """Open (or create) the database in `directory`. Raises StateError, with the path and
        what to do, when that cannot be done; moves a corrupt database aside first."""
        check_directory(directory, create=True)
        self.path = directory / DB_NAME
        self._busy_ms = int(busy_timeout * 1000)
        self._lock = threading.RLock()
        # Other processes' writers (workers, the CLI) queue on this, not on SQLite's sleeps.
        self._writer = WriterLock(directory / f"{DB_NAME}-writer")
        self._closing = threading.Event()
        self._upkeep: threading.Thread | None = None
        self._budget = 0  # the WAL's bound last set (bytes)
        self._dirty = False  # committed since the WAL was last truncated
        self._last_commit = time.monotonic()
        self._failing = False  # a commit failed for lack of space: checkpoint until one succeeds
        self.moved_aside: Path | None = None  # where a corrupt database went
        try:
            self._conn = self._open(synchronous)
        except (sqlite3.Error, Corrupt) as exc:
            if isinstance(exc, sqlite3.Error) and not is_corrupt(exc):
                raise unusable(self.path, exc) from None
            self.moved_aside = move_aside(self.path, str(exc))
            try:
                self._conn = self._open(synchronous)
            except sqlite3.Error as again:
                raise unusable(self.path, again) from None

    def _open(self, synchronous: str) -> sqlite3.Connection:
        if self.path.exists() and not self.path.is_file():
            raise StateError(
                f"state database {self.path} is {describe_path(self.path)}: move it away (the"
                " bridge creates the database) or choose another state_dir"
            )
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            self._bound_wal(conn)
            conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
            problem = integrity_problem(conn)
            if problem:
                raise Corrupt(f"quick_check: {problem}")
            migrate(conn, str(self.path))
        except BaseException:
            conn.close()
            raise
        return conn

    @property
    def connection(self) -> sqlite3.Connection:
        """The one connection: use it only inside `transaction()` or `reading()`."""
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE): committed on exit, rolled back on error.

        A failed COMMIT is rolled back too: SQLite may keep the transaction open after one
        (SQLITE_BUSY, and some I/O errors), and every later BEGIN would then fail."""
        with self._lock:
            changes = self._conn.total_changes
            try:
                self._writer.acquire(self._busy_ms / 1000)
                try:
                    self._conn.execute("BEGIN IMMEDIATE")
                    yield self._conn
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
                finally:
                    self._writer.release()
            except sqlite3.Error as exc:
                self._failed(exc)
                raise
            # A transaction that changed nothing (an idle sender's claim finding no row) wrote
            # nothing: writes have still paused, and the WAL may be truncated.
            if self._conn.total_changes != changes:
                self._dirty = True
                self._last_commit = time.monotonic()

    def _rollback(self) -> None:
        # An error means SQLite rolled it back itself (as it does after SQLITE_FULL).
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def _failed(self, exc: sqlite3.Error) -> None:
        if is_out_of_space(exc) or result_code(exc) == SQLITE_IOERR:
            if not self._failing:
                log.error(
                    f'state store cannot commit path={self.path} error="{exc}" (answering 503'
                    " until it can; it retries by itself once there is room)"
                )
            self._failing = True
        elif is_corrupt(exc):
            log.error(
                f'state database corrupt path={self.path} error="{exc}" (restart the bridge: it'
                " moves the file aside and starts an empty one)"
            )

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads (each statement sees committed data)."""
        with self._lock:
            yield self._conn

    def writable(self) -> bool:
        """Can we commit right now? (for /-/ready)"""
        try:
            with self.transaction() as conn:
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', '1')")
        except sqlite3.Error:
            return False
        return True

    # -- keeping the WAL small -------------------------------------------------------------------

    def _wal_bytes(self) -> int:
        try:
            return os.stat(f"{self.path}-wal").st_size
        except OSError:
            return 0

    def wal_budget(self) -> int:
        """The WAL's bound in bytes now: a quarter of the room it may use (the free space and what
        it holds already), between WAL_MIN and WAL_MAX."""
        try:
            fs = os.statvfs(self.path.parent)
        except OSError:
            return WAL_MIN
        room = fs.f_bavail * fs.f_frsize + self._wal_bytes()
        return max(WAL_MIN, min(WAL_MAX, room // WAL_SHARE))

    def _bound_wal(self, conn: sqlite3.Connection) -> None:
        budget = self.wal_budget()
        if budget == self._budget:
            return
        page = int(conn.execute("PRAGMA page_size").fetchone()[0]) or 4096
        conn.execute(f"PRAGMA wal_autocheckpoint={max(16, budget // page)}")
        conn.execute(f"PRAGMA journal_size_limit={budget}")
        self._budget = budget

    def checkpoint(self) -> bool:
        """Copy the WAL into the database and truncate it to nothing. False when it could not
        (no room to grow the database, or another process's reader still uses the WAL)."""
        with self._lock:
            # Not long: another process's reader (the CLI) can hold the WAL, and requests wait
            # for this lock meanwhile. The next upkeep round tries again.
            self._conn.execute(f"PRAGMA busy_timeout={CHECKPOINT_BUSY_MS}")
            try:
                busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            except sqlite3.Error as exc:
                log.debug(f'checkpoint failed path={self.path} error="{exc}"')
                return False
            finally:
                self._conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            if busy:
                return False
            self._dirty = False
            if self._failing:
                self._failing = False
                log.warning(f"state store has room again path={self.path} (WAL checkpointed)")
            return True

    def upkeep(self, now: float | None = None) -> None:
        """One round of the upkeep thread: fit the WAL's bound to the free space, truncate the
        WAL when writes paused, and keep trying after a commit failed for lack of space (the
        checkpoint is what frees the WAL's space)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._bound_wal(self._conn)
        if self._failing or (self._dirty and now - self._last_commit >= IDLE_BEFORE_TRUNCATE):
            self.checkpoint()

    @property
    def failing(self) -> bool:
        """A commit failed for lack of space (or an I/O error), and no checkpoint since worked."""
        return self._failing

    def start_upkeep(self) -> None:
        """Run `upkeep` every UPKEEP_INTERVAL seconds until close (the daemon's store)."""
        if self._upkeep is not None:
            return

        def loop() -> None:
            while not self._closing.wait(UPKEEP_INTERVAL):
                try:
                    self.upkeep()
                except Exception:  # never let upkeep die silently: the WAL would grow again
                    log.exception(f"state store upkeep failed path={self.path}")

        self._upkeep = threading.Thread(target=loop, name="store-upkeep", daemon=True)
        self._upkeep.start()

    def close(self) -> None:
        self._closing.set()
        if self._upkeep is not None:
            self._upkeep.join(5.0)
        with self._lock:
            self._conn.close()
            self._writer.close()
