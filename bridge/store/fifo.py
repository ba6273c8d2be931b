"""FIFOs beside the SQLite state file, through which the processes sharing it wake each other.

Two are used: the writer lock's (store/writerlock.py: a release wakes a waiting writer at once)
and the senders' (`state.db-queued`: a process that queued rows it does not send itself, an HTTP
worker when `server.background_worker` sends, wakes the process that does; PostgreSQL's
LISTEN/NOTIFY does this on a shared database, store/pglisten.py). A byte says "look again",
nothing more, so bytes may be merged, and a full FIFO (its reader busy) loses nothing that
matters: the reader finds the rows at its next look, and polls in any case.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import stat
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("bridge")

_DRAIN = 65536  # bytes: a FIFO's whole buffer on Linux, read at once
LISTEN_TICK = 0.5  # seconds: how soon a listener notices it was asked to stop


def open_fifo(path: Path) -> int | None:
    """The FIFO at `path`, made if missing, opened for both ends without blocking (on Linux a
    FIFO opened O_RDWR never waits for a peer, and its reader never sees an end of file); None
    where there can be none (a file system without FIFOs, a file of that name that is not one)."""
    try:
        with contextlib.suppress(FileExistsError):
            os.mkfifo(path, 0o600)
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def poke(fd: int) -> None:
    """One byte into the FIFO; when it is full, its reader has bytes waiting already."""
    with contextlib.suppress(BlockingIOError):
        os.write(fd, b"\0")


def drain(fd: int) -> None:
    """Empty the FIFO (the bytes waiting say one thing: look again)."""
    with contextlib.suppress(BlockingIOError):
        os.read(fd, _DRAIN)


class FifoListener:
    """A thread that calls `heard()` whenever bytes arrive in the FIFO `fd` (once for the bytes
    that came together), until `stop`."""

    def __init__(self, fd: int, heard: Callable[[], None], name: str) -> None:
        self._fd = fd
        self._heard = heard
        self._stop = threading.Event()
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(LISTEN_TICK * 4)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._poll.poll(LISTEN_TICK * 1000):
                continue
            drain(self._fd)  # first: a byte written while `heard` runs wakes it again
            try:
                self._heard()
            except Exception:  # a wake-up's failure must not end the listening
                log.exception("waking the senders failed")
