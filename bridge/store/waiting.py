"""A bound on how long a thread waits for the local store's locks, for work that must not wait.

The HTTP server runs quick inputs on its event loop's own thread when the store is local
(app/httpserver.py): there a wait for SQLite's locks holds up every connection, for as long as
the busy timeout (5 s) when another process holds the writer lock (a second worker, a CLI
command moving state). Inside `waiting_at_most(seconds)`, the SQLite store (store/db.py) waits
that long at most for its locks and then raises WouldWait; the server catches it and serves the
request on an application thread, where the wait holds up nobody.

It is raised only before this thread's first write transaction has its locks, so nothing has
been written: the request can be served again from its start. From then on the thread waits as
usual, because what follows (the answer's bookkeeping, a second transaction) must not be cut
halfway. PostgreSQL is never served inline (api.Store.local is False) and ignores the bound.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_LIMIT: ContextVar[float | None] = ContextVar("store_wait_limit", default=None)


class WouldWait(BaseException):
    """The store's locks are held by someone else longer than the thread agreed to wait, and
    nothing was written. A BaseException, so that no `except Exception` on the way (an
    application's 500, an input's 503) takes it for a failure: it reaches whoever set the
    bound."""


@contextmanager
def waiting_at_most(seconds: float) -> Iterator[None]:
    token = _LIMIT.set(seconds)
    try:
        yield
    finally:
        _LIMIT.reset(token)


def wait_limit() -> float | None:
    """This thread's bound, in seconds (None: wait as the store's busy timeout allows)."""
    return _LIMIT.get()


def locks_taken() -> None:
    """This thread's first write transaction has its locks: from now on it waits as usual."""
    if _LIMIT.get() is not None:
        _LIMIT.set(None)
