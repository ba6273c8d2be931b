"""Enough file descriptors for the connections the listener may hold.

Every open connection is a descriptor. The usual soft RLIMIT_NOFILE is 1024, far below
`server.connection_limit`, and a process that runs out cannot accept, open its database or tail a
file. The soft limit may be raised up to the hard limit without privileges, so the daemon does
that at start; when even the hard limit is too low it serves fewer connections, and says so.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass

# Descriptors for everything but connections: the listening socket, SQLite and its WAL, the HTTP
# session's pool to DingTalk, the config watcher, stdio, Python's own.
RESERVED = 256

GetLimit = Callable[[int], tuple[int, int]]
SetLimit = Callable[[int, tuple[int, int]], None]


@dataclass(frozen=True)
class FdBudget:
    connection_limit: int  # what the listener may hold, given the descriptors there are
    soft: int  # the soft limit after any raise
    raised_from: int | None  # the soft limit before, when it was raised
    error: str | None  # why it could not be raised as far as needed


def ensure_descriptors(
    connection_limit: int,
    other_files: int = 0,
    getrlimit: GetLimit = resource.getrlimit,
    setrlimit: SetLimit = resource.setrlimit,
) -> FdBudget:
    """Raise the soft RLIMIT_NOFILE to fit `connection_limit` connections plus `other_files`
    (tailed files) plus a reserve; return the connection limit that actually fits."""
    needed = connection_limit + other_files + RESERVED
    soft, hard = getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return FdBudget(connection_limit, soft, None, None)
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    error = None if target >= needed else f"the hard limit is {hard}"
    raised_from: int | None = None
    if target > soft:
        try:
            setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            raised_from, soft = soft, target
        except (ValueError, OSError) as exc:
            error = f"setrlimit failed: {exc}"
    fits = max(1, min(connection_limit, soft - other_files - RESERVED))
    return FdBudget(fits, soft, raised_from, error)
