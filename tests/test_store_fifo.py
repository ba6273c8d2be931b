"""The FIFOs beside the SQLite state file (store/fifo.py), through which the processes sharing
it wake each other: here the senders' (`state.db-queued`), between two stores on one file as
two processes would hold them. The writer lock's own use: test_sqlite_commit.py."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from bridge.store import fifo
from bridge.store.sqlite import QUEUED_SUFFIX, SqliteStore
from bridge.store.statedir import DB_NAME
from tests.harness import wait_until


def heard_by(store: SqliteStore) -> list[str | None]:
    """What `store`'s listener was told (its thread appends)."""
    heard: list[str | None] = []
    store.listen(heard.append)
    return heard


def listeners() -> int:
    """Listener threads running in this process (other tests' stores may hold some)."""
    return sum(1 for t in threading.enumerate() if t.name == "store-queued")


def test_a_store_that_sends_nothing_wakes_the_one_that_listens(tmp_path: Path) -> None:
    http, background = SqliteStore(tmp_path), SqliteStore(tmp_path)
    try:
        heard = heard_by(background)
        http.wake_senders()
        wait_until(lambda: heard == [None], timeout=10)  # None: look at every target
        assert background.probe(0.0).wakeups == "fifo"
        assert http.probe(0.0).wakeups == "in-process"  # it listens to nothing
    finally:
        http.close()
        background.close()


def test_wake_ups_that_come_together_are_heard_once_and_a_full_fifo_never_blocks(
    tmp_path: Path,
) -> None:
    http, background = SqliteStore(tmp_path), SqliteStore(tmp_path)
    try:
        for _ in range(100_000):  # past a FIFO's 64 KiB while nobody reads: no wait, no error
            http.wake_senders()
        heard = heard_by(background)
        wait_until(lambda: len(heard) >= 1, timeout=10)
        # All those bytes said one thing: at most a few wake-ups (one per read), not 100,000.
        assert len(heard) <= 3, len(heard)
    finally:
        http.close()
        background.close()


def test_a_listener_stops_with_its_store(tmp_path: Path) -> None:
    http, background = SqliteStore(tmp_path), SqliteStore(tmp_path)
    try:
        before = listeners()
        heard = heard_by(background)
        assert listeners() == before + 1
        background.close()
        assert listeners() == before
        http.wake_senders()  # nobody listens: the byte waits, harmlessly
        assert heard == []
    finally:
        http.close()


def test_without_a_fifo_there_are_no_wake_ups_and_no_errors(tmp_path: Path) -> None:
    """A file of that name that is not a FIFO (or a file system without FIFOs): the senders
    find the rows at their idle poll, as before."""
    (tmp_path / f"{DB_NAME}{QUEUED_SUFFIX}").write_text("not a fifo", "utf-8")
    http, background = SqliteStore(tmp_path), SqliteStore(tmp_path)
    try:
        before = listeners()
        heard = heard_by(background)
        assert listeners() == before  # no FIFO to read: no thread started for it
        http.wake_senders()
        assert background.probe(0.0).wakeups == "in-process"
        assert heard == []
        assert (tmp_path / f"{DB_NAME}{QUEUED_SUFFIX}").read_text("utf-8") == "not a fifo"
    finally:
        http.close()
        background.close()


def test_open_fifo_makes_one_and_refuses_what_is_not_one(tmp_path: Path) -> None:
    path = tmp_path / "wake"
    fd = fifo.open_fifo(path)
    assert fd is not None
    try:
        fifo.poke(fd)
        assert os.read(fd, 10) == b"\0"
        fifo.drain(fd)  # empty: no error, no wait
    finally:
        os.close(fd)
    (tmp_path / "plain").write_bytes(b"")
    assert fifo.open_fifo(tmp_path / "plain") is None
    assert fifo.open_fifo(tmp_path / "missing-dir" / "wake") is None
