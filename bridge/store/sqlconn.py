"""The connection the table families run their SQL on: sqlite3's, or an adapter with its shape.

Only what the families use: `execute` and `executemany` with `?` placeholders, answering a
cursor that can be fetched from, iterated, and tells how many rows a change touched; and the
`Dialect`, the little that differs between the backends' statements.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


# The channel an enqueue notifies on a shared database, with the target's name as the payload:
# each replica listens on it (store/pglisten.py) and wakes that target's sender.
WAKE_CHANNEL = "dingtalk_bridge_queued"


@dataclass(frozen=True)
class Dialect:
    """What a backend's SQL differs in, where the families' statements need to know.

    `row_locks`: appended to a claim's inner SELECT. PostgreSQL's `FOR UPDATE SKIP LOCKED` lets
    replicas claiming at once each take other rows (none waits, none takes a row twice); SQLite
    has one writer at a time, so its claims never meet. `notifies`: an enqueue NOTIFYs
    WAKE_CHANNEL in its transaction (delivered at commit, so a listener never wakes for a row
    it cannot see yet); SQLite's writers wake their senders in-process."""

    row_locks: str = ""
    notifies: bool = False

    def queued(self, conn: Connection, targets: Iterable[str]) -> None:
        """Tell the other replicas that `targets` have rows to send (once each)."""
        if self.notifies:
            for target in sorted(set(targets)):
                conn.execute("SELECT pg_notify(?, ?)", (WAKE_CHANNEL, target))


SQLITE = Dialect()
POSTGRESQL = Dialect(row_locks=" FOR UPDATE SKIP LOCKED", notifies=True)


def held_by(owner: str | None) -> tuple[str, tuple[str, ...]]:
    """The condition (and its argument) a claimer's outcome adds to a statement about a row or
    task: unless another claimer took it since (held by `owner`, or by no one: a row sent while
    no claim could be written, on a full disk). Nothing when the outcome has no owner (CLI)."""
    if owner is None:
        return "", ()
    return " AND (claimed_by = ? OR claimed_by IS NULL)", (owner,)
