"""Locks a write transaction takes on a name, so that replicas sharing a database take turns.

Some decisions read, then write what they read decided: a robot's turn (count its calls, then
record one more), a repeat interval (read the notification log, then queue and log a message).
Two replicas doing that at once on PostgreSQL would both read the state before either wrote,
and both act (21 calls in a minute, two notifications). So such a transaction first locks the
name it decides about, until it ends: the second waits, then reads what the first committed.

On SQLite there is nothing to take: a write transaction (BEGIN IMMEDIATE) already holds the
database's only write lock from its start, in this process and in any other on the same file.
On PostgreSQL it is a transaction-scoped advisory lock on (space, hashtext(name)): no table, no
row that must exist first (the first notification of a group has no log entry yet to lock), and
released by the commit or rollback. A hash collision between two names only makes them wait for
each other; the two-key form keeps these locks apart from the schema migration's one-key lock.
"""

from __future__ import annotations

from typing import Protocol

from bridge.store.sqlconn import Connection

ROBOT = 1  # a robot's (or app's) rate window: one turn at a time
NFLOG = 2  # one notification-log entry (rule, alert group): one decision at a time
ALERT_STATE = 3  # one posted alert of a prometheus input (store/alertstate.py): one post at a time


class Locks(Protocol):
    def lock(self, space: int, name: str) -> None:
        """Hold `name` of `space` until the transaction ends (waiting for another holder)."""
        ...


class WriterLocks:
    """SQLite's: the write transaction excludes every other writer already."""

    def lock(self, space: int, name: str) -> None:
        return None


class AdvisoryLocks:
    """PostgreSQL's: pg_advisory_xact_lock on the name's hash."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def lock(self, space: int, name: str) -> None:
        self._conn.execute(
            "SELECT pg_advisory_xact_lock(CAST(? AS INTEGER), hashtext(?))", (space, name)
        )
