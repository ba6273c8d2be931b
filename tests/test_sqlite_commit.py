"""The SQLite store's commits (bridge/store/db.py, bridge/store/writerlock.py): transactions of
several threads sharing one COMMIT (group commit), and writers of several processes queueing on
the writer lock. Real databases in tmp_path; threads stand in for concurrent requests, and a
second Database on the same directory for another process (flock locks belong to an open file,
so two in one process exclude each other as two processes do)."""

from __future__ import annotations

import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.store import db as db_module
from bridge.store import writerlock
from bridge.store.db import Database
from bridge.store.statedir import DB_NAME
from bridge.store.waiting import WouldWait, wait_limit, waiting_at_most
from bridge.store.writerlock import WriterLock
from tests.harness import wait_until

DB_NAME_WAL = f"{DB_NAME}-wal"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    # A group stays open for more members for GROUP_AGE (5 ms) in the daemon; on a loaded test
    # host starting the second thread can take longer, so the tests give it a minute.
    database = Database(tmp_path, group_age=60.0)
    yield database
    database.close()


def committed(path: Path, key: str) -> str | None:
    """What another connection (another process) sees of meta[key]."""
    with sqlite3.connect(path) as other:
        row = other.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def put(conn: sqlite3.Connection, key: str, value: str = "1") -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def second_member(
    db: Database, key: str, errors: list[BaseException], fail: bool = False, share: bool = True
) -> threading.Thread:
    """A thread that takes a transaction as soon as it can (it waits for the lock): another
    request's (`share`), or a sender's."""

    def run() -> None:
        try:
            with db.transaction(share_commit=share) as conn:
                put(conn, key)
                if fail:
                    raise ValueError("the second member fails")
        except BaseException as exc:
            errors.append(exc)

    return threading.Thread(target=run)


@pytest.mark.parametrize(
    ("share", "commits"),
    [
        (True, 1),  # another request: it commits both, once
        # A sender's transaction: the request's commits at once rather than wait for the
        # sender's to commit it (an input served on the HTTP loop's thread would hold up every
        # connection meanwhile).
        (False, 2),
    ],
)
def test_a_shared_transaction_waits_only_for_another_that_shares(
    db: Database, tmp_path: Path, share: bool, commits: int
) -> None:
    errors: list[BaseException] = []
    second = second_member(db, "b", errors, share=share)
    before = db.commits
    with db.transaction(share_commit=True) as conn:
        put(conn, "a")
        second.start()
        wait_until(lambda: db.waiting() == 1, timeout=5)  # it waits for the lock
    # The `with` ended: its row is committed (by the second member's COMMIT, when shared).
    assert committed(tmp_path / DB_NAME, "a") == "1"
    second.join(5)
    assert errors == []
    assert committed(tmp_path / DB_NAME, "b") == "1"
    assert db.commits - before == commits


def test_a_transaction_that_does_not_share_commits_at_once(db: Database, tmp_path: Path) -> None:
    errors: list[BaseException] = []
    second = second_member(db, "b", errors)
    before = db.commits
    with db.transaction() as conn:
        put(conn, "a")
        second.start()
        wait_until(lambda: db.waiting() == 1, timeout=5)
    assert committed(tmp_path / DB_NAME, "a") == "1"
    second.join(5)
    assert db.commits - before == 2


def test_a_failing_member_is_rolled_back_alone(db: Database, tmp_path: Path) -> None:
    errors: list[BaseException] = []
    second = second_member(db, "b", errors, fail=True)
    with db.transaction(share_commit=True) as conn:
        put(conn, "a")
        second.start()
        wait_until(lambda: db.waiting() == 1, timeout=5)
    second.join(5)
    assert [str(e) for e in errors] == ["the second member fails"]
    assert committed(tmp_path / DB_NAME, "a") == "1"
    assert committed(tmp_path / DB_NAME, "b") is None


def test_a_commit_that_fails_fails_every_member_and_keeps_nothing(
    db: Database, tmp_path: Path
) -> None:
    """A deferred foreign key is checked at COMMIT: the second member's orphan row makes the
    group's COMMIT fail, and the first member's `with`, already left, raises it too."""
    with db.transaction() as conn:
        conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.execute(
            "CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
        )
    db.connection.execute("PRAGMA foreign_keys = ON")
    errors: list[BaseException] = []

    def orphan() -> None:
        try:
            with db.transaction(share_commit=True) as conn:
                conn.execute("INSERT INTO child (p) VALUES (42)")
        except BaseException as exc:
            errors.append(exc)

    second = threading.Thread(target=orphan)
    with pytest.raises(sqlite3.IntegrityError), db.transaction(share_commit=True) as conn:
        put(conn, "a")
        second.start()
        wait_until(lambda: db.waiting() == 1, timeout=5)
    second.join(5)
    assert len(errors) == 1 and isinstance(errors[0], sqlite3.IntegrityError)
    assert committed(tmp_path / DB_NAME, "a") is None
    with db.transaction() as conn:  # the store goes on
        put(conn, "after")
    assert committed(tmp_path / DB_NAME, "after") == "1"


def test_a_nested_transaction_is_a_savepoint_of_the_outer_one(db: Database, tmp_path: Path) -> None:
    with db.transaction() as conn:
        put(conn, "outer")
        with pytest.raises(ValueError), db.transaction() as inner:
            put(inner, "inner")
            raise ValueError("inner fails")
        with db.transaction() as inner:
            put(inner, "kept")
    assert committed(tmp_path / DB_NAME, "outer") == "1"
    assert committed(tmp_path / DB_NAME, "inner") is None
    assert committed(tmp_path / DB_NAME, "kept") == "1"


def test_many_threads_sharing_commits_lose_nothing(db: Database, tmp_path: Path) -> None:
    threads, each = 8, 50
    failures: list[BaseException] = []

    def work(n: int) -> None:
        for i in range(each):
            try:
                with db.transaction(share_commit=True) as conn:
                    put(conn, f"t{n}-{i}")
                # Committed when the `with` ends, as seen from another connection:
                assert committed(tmp_path / DB_NAME, f"t{n}-{i}") == "1"
            except BaseException as exc:
                failures.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    before = db.commits
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert failures == []
    with db.reading() as conn:
        rows = conn.execute("SELECT count(*) FROM meta WHERE key LIKE 't%-%'").fetchone()[0]
    assert rows == threads * each
    assert db.commits - before <= threads * each


# -- a batch: one thread's transactions under one COMMIT (the HTTP loop's turn) ------------------


def test_a_batch_commits_its_transactions_once_at_its_end_then_runs_their_effects(
    db: Database, tmp_path: Path
) -> None:
    ran: list[str] = []
    db.after_commit(lambda: ran.append("outside a batch: at once"))
    assert ran == ["outside a batch: at once"]
    before = db.commits
    with db.batch():
        for key in ("a", "b", "c"):
            with db.transaction(share_commit=True) as conn:
                put(conn, key)
            db.after_commit(lambda key=key: ran.append(key))  # type: ignore[misc]
            assert committed(tmp_path / DB_NAME, key) is None  # not before the batch ends
        assert ran == ["outside a batch: at once"]
    assert [committed(tmp_path / DB_NAME, key) for key in ("a", "b", "c")] == ["1", "1", "1"]
    assert db.commits - before == 1
    assert ran == ["outside a batch: at once", "a", "b", "c"]


def test_a_failing_transaction_in_a_batch_is_rolled_back_alone(
    db: Database, tmp_path: Path
) -> None:
    with db.batch():
        with db.transaction() as conn:
            put(conn, "a")
        with pytest.raises(ValueError), db.transaction() as conn:
            put(conn, "b")
            raise ValueError("this request fails")
        with db.transaction() as conn:
            put(conn, "c")
    assert [committed(tmp_path / DB_NAME, key) for key in ("a", "b", "c")] == ["1", None, "1"]


def test_a_batch_whose_commit_fails_keeps_nothing_runs_no_effect_and_the_store_goes_on(
    db: Database, tmp_path: Path
) -> None:
    """A deferred foreign key is checked at COMMIT: one orphan row fails the batch's COMMIT,
    which the batch's end raises; nothing of it is kept and no effect runs (its requests are
    served again, each by itself)."""
    with db.transaction() as conn:
        conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.execute(
            "CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
        )
    db.connection.execute("PRAGMA foreign_keys = ON")
    ran: list[str] = []
    with pytest.raises(sqlite3.IntegrityError), db.batch():
        with db.transaction() as conn:
            put(conn, "a")
        db.after_commit(lambda: ran.append("a"))
        with db.transaction() as conn:
            conn.execute("INSERT INTO child (p) VALUES (42)")
    assert ran == []
    assert committed(tmp_path / DB_NAME, "a") is None
    with db.transaction() as conn:
        put(conn, "after")
    assert committed(tmp_path / DB_NAME, "after") == "1"


def test_another_thread_writes_only_after_the_batch_has_ended(db: Database, tmp_path: Path) -> None:
    """The batch keeps the store's lock from its first write to its COMMIT: a sender's
    transaction meanwhile waits, then commits after it (never inside the batch's)."""
    errors: list[BaseException] = []
    sender = second_member(db, "sender", errors, share=False)
    before = db.commits
    with db.batch():
        with db.transaction(share_commit=True) as conn:
            put(conn, "request")
        sender.start()
        wait_until(lambda: db.waiting() == 1, timeout=5)
        assert committed(tmp_path / DB_NAME, "sender") is None
    sender.join(5)
    assert errors == []
    assert committed(tmp_path / DB_NAME, "sender") == "1"
    assert db.commits - before == 2


# -- the writer lock: one writer at a time across processes ------------------------------------


def test_another_process_holding_the_writer_lock_makes_a_commit_wait_then_time_out(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path, busy_timeout=0.3)
    other = WriterLock(tmp_path / f"{DB_NAME}-writer")  # another open file: another process
    try:
        other.acquire(1.0)
        with (
            pytest.raises(sqlite3.OperationalError, match="database is locked"),
            db.transaction() as conn,
        ):
            put(conn, "blocked")
        released = threading.Timer(0.1, other.release)
        released.start()
        with db.transaction() as conn:  # waits for the release, then commits
            put(conn, "after")
        released.join()
        assert committed(tmp_path / DB_NAME, "after") == "1"
        assert committed(tmp_path / DB_NAME, "blocked") is None
    finally:
        other.close()
        db.close()


def test_two_processes_writing_at_once_both_commit_everything(tmp_path: Path) -> None:
    first, second = Database(tmp_path), Database(tmp_path)
    failures: list[BaseException] = []

    def work(db: Database, name: str) -> None:
        for i in range(200):
            try:
                with db.transaction() as conn:
                    put(conn, f"{name}{i}")
            except BaseException as exc:
                failures.append(exc)

    try:
        workers = [
            threading.Thread(target=work, args=(first, "x")),
            threading.Thread(target=work, args=(second, "y")),
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        assert failures == []
        with first.reading() as conn:
            assert (
                conn.execute("SELECT count(*) FROM meta WHERE key GLOB '[xy]*'").fetchone()[0]
                == 400
            )
    finally:
        first.close()
        second.close()


def test_a_waiting_writer_is_woken_by_the_release_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The waiter listens on the FIFO beside the lock: with the retry after a timeout pushed to
    a minute, only the byte the release writes can wake it within the test's wait."""
    monkeypatch.setattr(writerlock, "LONGEST_WAIT", 60.0)
    holder = WriterLock(tmp_path / f"{DB_NAME}-writer")
    waiter = WriterLock(tmp_path / f"{DB_NAME}-writer")
    wake = tmp_path / f"{DB_NAME}-writer{writerlock.WAKE_SUFFIX}"
    got: list[bool] = []
    try:
        assert stat.S_ISFIFO(wake.stat().st_mode)
        holder.acquire(1.0)
        thread = threading.Thread(target=lambda: got.append(waiter.acquire_within(120.0)))
        thread.start()
        time.sleep(0.2)  # the waiter has tried and is waiting (not a check: it cannot be seen)
        assert got == []
        holder.release()
        thread.join(20)
        assert got == [True]
        assert not holder.acquire_within(0.05)  # the waiter holds it now
    finally:
        holder.close()
        waiter.close()


def test_without_a_fifo_a_waiting_writer_still_gets_the_lock(tmp_path: Path) -> None:
    """A file of the FIFO's name that is not one (or a file system without FIFOs): the waiters
    sleep between tries instead, and the lock still excludes and is handed on."""
    wake = tmp_path / f"{DB_NAME}-writer{writerlock.WAKE_SUFFIX}"
    wake.write_bytes(b"not a fifo")
    holder = WriterLock(tmp_path / f"{DB_NAME}-writer")
    waiter = WriterLock(tmp_path / f"{DB_NAME}-writer")
    try:
        holder.acquire(1.0)
        assert not waiter.acquire_within(0.05)
        threading.Timer(0.1, holder.release).start()
        assert waiter.acquire_within(10.0)
        assert wake.read_bytes() == b"not a fifo"  # never written to
    finally:
        holder.close()
        waiter.close()


# -- a thread that must not wait (store/waiting.py) ----------------------------------------------


def test_a_bounded_thread_gives_up_on_a_writer_lock_held_elsewhere_having_written_nothing(
    tmp_path: Path,
) -> None:
    """Another process holds the writer lock: a thread inside waiting_at_most gets WouldWait
    after its bound (not the 5 s busy timeout), nothing of its transaction is written, and the
    same thread without the bound waits and commits once the lock is let go."""
    db = Database(tmp_path, busy_timeout=5.0)
    other = WriterLock(tmp_path / f"{DB_NAME}-writer")
    try:
        other.acquire(1.0)
        ran: list[str] = []
        with pytest.raises(WouldWait), waiting_at_most(0.02), db.transaction() as conn:
            ran.append("body")  # never reached: the locks come before the block
            put(conn, "bounded")
        assert ran == [] and wait_limit() is None
        released = threading.Timer(0.1, other.release)
        released.start()
        with db.transaction() as conn:
            put(conn, "unbounded")
        released.join()
        assert committed(tmp_path / DB_NAME, "bounded") is None
        assert committed(tmp_path / DB_NAME, "unbounded") == "1"
    finally:
        other.close()
        db.close()


def test_a_bounded_thread_gives_up_on_the_store_lock_another_thread_holds(db: Database) -> None:
    """A sender's transaction holds the store's lock: a bounded read or write gives up."""
    inside, leave = threading.Event(), threading.Event()

    def sender() -> None:
        with db.transaction() as conn:
            put(conn, "sender")
            inside.set()
            leave.wait(10)

    holder = threading.Thread(target=sender)
    holder.start()
    try:
        assert inside.wait(5)
        with waiting_at_most(0.02):
            with pytest.raises(WouldWait), db.reading():
                pass
            with pytest.raises(WouldWait), db.transaction():
                pass
    finally:
        leave.set()
        holder.join(5)
    assert db.waiting() == 0  # the ones that gave up left no count behind
    with waiting_at_most(0.02), db.reading() as conn:  # free again: no wait, no WouldWait
        assert conn.execute("SELECT value FROM meta WHERE key = 'sender'").fetchone()[0] == "1"


def test_once_its_first_transaction_has_the_locks_a_bounded_thread_waits_as_usual(
    db: Database,
) -> None:
    """What follows a request's commit must not be cut halfway: the bound ends there."""
    with waiting_at_most(0.02):
        assert wait_limit() == 0.02
        with db.transaction() as conn:
            put(conn, "first")
        assert wait_limit() is None
    assert wait_limit() is None


# -- the checkpoint thread -----------------------------------------------------------------------


def _write_batches(db: Database, wal: Path, pause: float) -> int:
    """12 batches of 40 commits (each a page or more of WAL), a pause after each; the WAL
    file's largest size meanwhile."""
    largest = 0
    for batch in range(12):
        for i in range(40):
            with db.transaction() as conn:
                put(conn, f"k{batch}-{i}", "x" * 3000)
        time.sleep(pause)
        largest = max(largest, wal.stat().st_size)
    return largest


def test_the_checkpoint_thread_keeps_the_wal_short_while_commits_come(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SQLite's own checkpoint at the bound out of reach, the store-checkpoint thread
    alone copies the WAL into the database while commits come, and the writers start the WAL
    over: it stays a fraction of the WAL the same commits leave without the thread."""
    monkeypatch.setattr(db_module, "WAL_MIN", 1 << 40)
    monkeypatch.setattr(db_module, "WAL_MAX", 1 << 40)
    alone = Database(tmp_path / "alone")
    try:
        without = _write_batches(alone, tmp_path / "alone" / DB_NAME_WAL, 0.0)
    finally:
        alone.close()
    db = Database(tmp_path / "kept")
    db.start_upkeep()
    try:
        largest = _write_batches(db, tmp_path / "kept" / DB_NAME_WAL, 0.25)
        assert db.background_checkpoints > 0
        assert largest * 4 < without, (largest, without)
        assert committed(tmp_path / "kept" / DB_NAME, "k11-39") == "x" * 3000
    finally:
        db.close()
