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

Under load the checkpoints are a thread's own (`store-checkpoint`, with a connection of its
own): a PASSIVE checkpoint every CHECKPOINT_EVERY seconds while commits come copies the WAL
into the database without holding the writer lock, and the next writer then starts the WAL over.
Left to SQLite, the commit that crosses the bound checkpoints, with its fsyncs, while it holds
the writer lock and every request (of every worker) waits; under a storm (~35 KB of WAL per
accepted alert) that was 10-15 % of the throughput (bench/README.md, issue 13). SQLite's own
checkpoint at the bound stays, for when this thread falls behind.

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
from collections.abc import Callable, Iterator
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
from bridge.store.waiting import WouldWait, locks_taken, wait_limit
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
CHECKPOINT_EVERY = 0.1  # seconds between the checkpoint thread's looks


GROUP_MAX = 32  # transactions committed together at most
GROUP_AGE = 0.005  # seconds a group stays open for more members at most


class _Group:
    """One BEGIN ... COMMIT that several threads' transactions share."""

    __slots__ = ("changes", "done", "error", "members", "started")

    def __init__(self, changes: int) -> None:
        self.changes = changes  # the connection's total_changes at BEGIN
        # Set once committed or rolled back; made by the first member to wait for it (most
        # groups have one member, and an Event per commit is measurable at this rate).
        self.done: threading.Event | None = None
        self.error: BaseException | None = None  # why it was rolled back
        self.members = 0
        self.started = time.monotonic()


class _Batch:
    """A thread's batch (Database.batch): its transactions share one commit, at its end."""

    __slots__ = ("effects", "locked")

    def __init__(self) -> None:
        self.effects: list[Callable[[], None]] = []  # run once the batch's writes are committed
        self.locked = False  # its first transaction began the group: the lock is kept to the end


class Database:
    """The SQLite connection of the state store, its lock, and the WAL's upkeep. The store's
    operations are in bridge/store/sqlite.py (`SqliteStore`), on this connection."""

    def __init__(
        self,
        directory: Path,
        synchronous: str = "normal",
        busy_timeout: float = 5.0,
        group_age: float = GROUP_AGE,
    ):
        """Open (or create) the database in `directory`. Raises StateError, with the path and
        what to do, when that cannot be done; moves a corrupt database aside first."""
        check_directory(directory, create=True)
        self.path = directory / DB_NAME
        self._busy_ms = int(busy_timeout * 1000)
        self._lock = threading.RLock()
        # Other processes' writers (workers, the CLI) queue on this, not on SQLite's sleeps.
        self._writer = WriterLock(directory / f"{DB_NAME}-writer")
        self._entry = threading.Lock()  # guards _entrants
        self._entrants = 0  # threads waiting for the lock to start a transaction
        self._sharers = 0  # those of them that would share a commit
        self._group: _Group | None = None  # the open transaction, its members' savepoints in it
        self._depth = 0  # transactions the lock's holder is inside (1, more when nested)
        self._group_age = group_age
        self._local = threading.local()  # .batch: the _Batch this thread is in, if any
        self.commits = 0  # COMMITs done (fewer than transactions when they were grouped)
        self._closing = threading.Event()
        self._upkeep: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        self._synchronous = synchronous
        self.background_checkpoints = 0  # PASSIVE checkpoints the checkpoint thread ran
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
    def transaction(self, share_commit: bool = False) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed before the `with` exits, rolled back on error.

        Group commit: transactions of several threads that come together share one BEGIN ...
        COMMIT, each inside a savepoint of its own. One that fails is rolled back to its
        savepoint alone; the others commit. With `share_commit`, a thread leaving its `with`
        while another sharing one waits to enter leaves the group open for it (GROUP_MAX
        transactions, GROUP_AGE seconds at most) and waits; without, or when only threads that
        do not share wait (a sender: its claim can take milliseconds, and an input served on
        the HTTP loop's thread would hold up every connection meanwhile), it commits at once,
        for itself and the members before it. Either way every `with` exits only after the
        COMMIT that holds its writes, and raises if that COMMIT failed. Only callers that hold
        no other lock while in the block may share (the intake): a member waiting for another
        thread to commit must not hold what that thread needs. A COMMIT and the writer lock
        per request were over a third of the intake thread's time under load (bench/README.md,
        issue 13).

        A failed COMMIT is rolled back too: SQLite may keep the transaction open after one
        (SQLITE_BUSY, and some I/O errors), and every later BEGIN would then fail."""
        limit = wait_limit()  # (store/waiting.py: a thread that must not wait long)
        batch: _Batch | None = getattr(self._local, "batch", None)
        with self._entry:
            self._entrants += 1
            self._sharers += share_commit
        try:
            self._take_lock(limit)
        finally:
            with self._entry:
                self._entrants -= 1
                self._sharers -= share_commit
        holding = True
        try:
            if self._depth > 0:  # nested in this thread's own transaction: a savepoint only
                yield from self._nested()
                return
            group = self._group
            if group is None:
                group = self._begin_group(limit)  # raises when the write lock cannot be had
            elif batch is not None and group.error is not None:
                raise group.error  # the batch is lost already; its end says so
            locks_taken()
            self._depth = 1
            error: BaseException | None = None
            try:
                if group.members == 0 and batch is None:
                    # The first member needs no savepoint: nothing else is in the transaction
                    # yet, so its failure rolls the whole of it back (two statements saved).
                    try:
                        yield self._conn
                    except BaseException as exc:
                        error = group.error = exc
                else:
                    self._conn.execute("SAVEPOINT member")
                    try:
                        yield self._conn
                        self._conn.execute("RELEASE member")
                    except BaseException as exc:
                        error = exc
                        self._undo_member(group)
            except sqlite3.Error as exc:  # SAVEPOINT itself failed
                error = error or exc
                self._undo_member(group)
            finally:
                self._depth = 0
            group.members += 1
            if batch is not None:  # committed at the batch's end, with the lock kept till then
                if not batch.locked:
                    batch.locked = True
                    holding = False
                if error is not None:
                    if isinstance(error, sqlite3.Error):
                        self._failed(error)
                    raise error
                return
            if (
                share_commit
                and group.error is None
                and self._sharers > 0
                and group.members < GROUP_MAX
                and time.monotonic() - group.started < self._group_age
            ):
                done = group.done = group.done or threading.Event()
                self._lock.release()  # the next one in commits for both (or leaves it open)
                holding = False
                done.wait()
            else:
                self._end_group(group)
            if error is not None:
                if isinstance(error, sqlite3.Error):
                    self._failed(error)
                raise error
            if group.error is not None:
                raise group.error
        finally:
            if holding:
                self._lock.release()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """This thread's write transactions inside the block share one BEGIN ... COMMIT, at
        its end, each in a savepoint of its own (one that fails is rolled back alone); the
        effects given to `after_commit` meanwhile run after that COMMIT, and are dropped when
        it fails. Raises the COMMIT's error: then nothing of the block was committed, and each
        transaction in it may be done again by itself.

        The HTTP server serves the inputs' requests that arrive in one turn of its loop in a
        batch (app/httpserver.py): a COMMIT per request, and its ~8 pages of WAL (the outbox
        row and its two indexes, the notification log, the dedup claim and its index, each a
        page), were the largest part of a request's cost (bench/README.md, issue 13). Other
        threads wait for the store's lock from the batch's first write to its end, so the
        caller keeps it short. A batch inside a batch is part of the outer one."""
        if getattr(self._local, "batch", None) is not None:
            yield
            return
        batch = self._local.batch = _Batch()
        committed = False
        try:
            try:
                yield
            except BaseException as exc:
                if batch.locked and self._group is not None:
                    self._group.error = self._group.error or exc  # rolled back below
                raise
            finally:
                self._local.batch = None
                if batch.locked:
                    group = self._group
                    try:
                        if group is not None:
                            self._end_group(group)
                    finally:
                        self._lock.release()
                    if group is not None and group.error is not None:
                        raise group.error
            committed = True
        finally:
            if committed:
                for effect in batch.effects:
                    try:
                        effect()
                    except Exception:  # bookkeeping: one that fails must not stop the rest
                        log.exception(f"an effect after a batch's commit failed path={self.path}")

    def after_commit(self, effect: Callable[[], None]) -> None:
        """Run `effect` once this thread's writes so far are committed: now, or at the end of
        the batch it is in (never, if that batch's COMMIT fails)."""
        batch: _Batch | None = getattr(self._local, "batch", None)
        if batch is None:
            effect()
        else:
            batch.effects.append(effect)

    def _nested(self) -> Iterator[sqlite3.Connection]:
        self._depth += 1
        name = f"nested{self._depth}"
        try:
            self._conn.execute(f"SAVEPOINT {name}")
            try:
                yield self._conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute(f"ROLLBACK TO {name}")
                    self._conn.execute(f"RELEASE {name}")
                raise
            self._conn.execute(f"RELEASE {name}")
        finally:
            self._depth -= 1

    def _begin_group(self, limit: float | None) -> _Group:
        try:
            if limit is None:
                self._writer.acquire(self._busy_ms / 1000)
            elif not self._writer.acquire_within(limit):
                raise WouldWait  # (not an sqlite3.Error: no failure to record)
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self._writer.release()
                raise
        except sqlite3.Error as exc:
            self._failed(exc)
            raise
        self._group = _Group(self._conn.total_changes)
        return self._group

    def _undo_member(self, group: _Group) -> None:
        """Roll one member back to its savepoint. When SQLite has rolled the whole transaction
        back itself (as after SQLITE_FULL), the group is lost: its other members fail too."""
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK TO member")
                self._conn.execute("RELEASE member")
                return
            except sqlite3.Error as exc:
                group.error = exc
        else:
            group.error = sqlite3.OperationalError(
                "the transaction was rolled back (another write in it failed)"
            )

    def _end_group(self, group: _Group) -> None:
        """COMMIT (or, when the group failed, roll back), then wake its members."""
        try:
            if group.error is None:
                try:
                    self._conn.execute("COMMIT")
                    self.commits += 1
                except sqlite3.Error as exc:
                    group.error = exc
                    self._failed(exc)
            if group.error is not None:
                self._rollback()
            elif self._conn.total_changes != group.changes:
                # A group that changed nothing (idle senders' claims finding no row) wrote
                # nothing: writes have still paused, and the WAL may be truncated.
                self._dirty = True
                self._last_commit = time.monotonic()
        finally:
            self._group = None
            self._writer.release()
            if group.done is not None:
                group.done.set()

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
        """The connection for reads (each statement sees committed data: a group left open for
        more members is committed first)."""
        self._take_lock(wait_limit())
        try:
            self._settle()
            yield self._conn
        finally:
            self._lock.release()

    def _take_lock(self, limit: float | None) -> None:
        """This process's store lock; WouldWait when `limit` (store/waiting.py) runs out."""
        if limit is None:
            self._lock.acquire()
        elif not self._lock.acquire(timeout=limit):
            raise WouldWait

    def waiting(self) -> int:
        """Threads waiting to start a transaction (the ones a shared commit waits for)."""
        with self._entry:
            return self._entrants

    def _settle(self) -> None:
        """Commit the group left open for more members, if any (this thread holds the lock and
        is not inside a transaction of its own)."""
        batch: _Batch | None = getattr(self._local, "batch", None)
        if self._group is not None and self._depth == 0 and (batch is None or not batch.locked):
            self._end_group(self._group)

    def writable(self) -> bool:
        """Can we commit right now? (for /-/ready) Not while commits fail for lack of room and
        a checkpoint cannot fix it: the probe's one small row may still fit in the WAL's slack
        where a message's commit (its row, its history with the bodies sent) does not."""
        if self._failing and not self.checkpoint():
            return False
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
            self._settle()
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
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="store-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        """PASSIVE checkpoints on a connection of this thread's, while this process commits
        (see the module doc). PASSIVE waits for no one: frames a reader still needs, or a
        checkpoint another process runs, are left for the next look."""
        conn: sqlite3.Connection | None = None
        seen = self.commits
        try:
            while not self._closing.wait(CHECKPOINT_EVERY):
                if self.commits == seen:
                    continue
                seen = self.commits
                try:
                    if conn is None:
                        conn = sqlite3.connect(self.path, isolation_level=None, timeout=0)
                        full = self._synchronous == "full"
                        conn.execute(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.background_checkpoints += 1
                except sqlite3.Error as exc:  # busy, or no room: SQLite's own bound still holds
                    log.debug(f'background checkpoint failed path={self.path} error="{exc}"')
        finally:
            if conn is not None:
                conn.close()

    def close(self) -> None:
        self._closing.set()
        if self._upkeep is not None:
            self._upkeep.join(5.0)
        if self._checkpointer is not None:
            self._checkpointer.join(5.0)
        with self._lock:
            self._settle()
            self._conn.close()
            self._writer.close()
