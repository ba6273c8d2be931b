"""The outbox table: accepted messages until DingTalk takes them, and dead letters after.

Rows move: pending -> (delivered: deleted) | (retry: pending, later not_before) | dead.
A work notice DingTalk took waits as 'sent' until getsendresult says who received it
(store/notices.py has that part of the lifecycle).
A dead letter keeps the reason, DingTalk's errcode and errmsg; `outbox retry` makes it pending.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from bridge.model import Delivery, Event, Message
from bridge.store.codec import event_from_json, event_to_json, message_from_json, message_to_json

PENDING = "pending"
DEAD = "dead"

_COLUMNS = (
    "id, target, rule, fingerprint, event_status, message, status, created_at, not_before, "
    "attempts, parts_sent, reason, errcode, errmsg, updated_at, event"
)


@dataclass(frozen=True)
class Row:
    id: str
    target: str
    rule: str
    fingerprint: str
    event_status: str
    message: Message
    status: str
    created_at: float
    not_before: float
    attempts: int
    parts_sent: int
    reason: str | None
    errcode: int | None
    errmsg: str | None
    updated_at: float
    event: Event | None  # set while the body is still to be rendered (see model.Delivery)


class UnreadableRow(Exception):
    """A stored message that no longer decodes (an older version's format, a damaged value):
    the sender dead-letters it by id instead of failing on it at every turn."""

    def __init__(self, id_: str, rule: str, error: str) -> None:
        super().__init__(f"outbox row {id_} cannot be read: {error}")
        self.id = id_
        self.rule = rule
        self.error = error


def _row(values: tuple[object, ...]) -> Row:
    fields = list(values)
    try:
        fields[5] = message_from_json(str(fields[5]))
        fields[15] = event_from_json(str(fields[15])) if fields[15] is not None else None
    except Exception as exc:
        raise UnreadableRow(str(fields[0]), str(fields[2]), f"{type(exc).__name__}: {exc}") from exc
    return Row(*fields)  # type: ignore[arg-type]


def enqueue(conn: sqlite3.Connection, deliveries: Iterable[Delivery], now: float) -> int:
    rows = [
        (
            d.id,
            d.target,
            d.rule,
            d.fingerprint,
            d.event_status,
            message_to_json(d.message),
            PENDING,
            now,
            now,
            0,
            0,
            now,
            event_to_json(d.event) if d.event is not None else None,
        )
        for d in deliveries
    ]
    conn.executemany(
        "INSERT INTO outbox (id, target, rule, fingerprint, event_status, message, status,"
        " created_at, not_before, attempts, parts_sent, updated_at, event)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return len(rows)


def due(conn: sqlite3.Connection, target: str, now: float, limit: int) -> list[Row]:
    """Pending rows of `target` whose time has come, oldest first."""
    cursor = conn.execute(
        f"SELECT {_COLUMNS} FROM outbox WHERE target = ? AND status = 'pending'"
        " AND not_before <= ? ORDER BY created_at, id LIMIT ?",
        (target, now, limit),
    )
    return [_row(r) for r in cursor.fetchall()]


def next_due_at(conn: sqlite3.Connection, target: str) -> float | None:
    value = conn.execute(
        "SELECT MIN(not_before) FROM outbox WHERE target = ? AND status = 'pending'", (target,)
    ).fetchone()[0]
    return float(value) if value is not None else None


def pending_count(conn: sqlite3.Connection, target: str | None = None) -> int:
    query = "SELECT COUNT(*) FROM outbox WHERE status = 'pending'"
    if target is None:
        return int(conn.execute(query).fetchone()[0])
    return int(conn.execute(query + " AND target = ?", (target,)).fetchone()[0])


def depth(conn: sqlite3.Connection) -> dict[str, tuple[int, float | None]]:
    """Per target: (pending messages, created_at of the oldest)."""
    rows = conn.execute(
        "SELECT target, COUNT(*), MIN(created_at) FROM outbox WHERE status = 'pending'"
        " GROUP BY target"
    ).fetchall()
    return {str(t): (int(n), float(oldest)) for t, n, oldest in rows}


def delivered(conn: sqlite3.Connection, ids: Iterable[str]) -> None:
    conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])


def progress(conn: sqlite3.Connection, id_: str, parts_sent: int, now: float) -> None:
    conn.execute(
        "UPDATE outbox SET parts_sent = ?, updated_at = ? WHERE id = ?", (parts_sent, now, id_)
    )


def retry_later(
    conn: sqlite3.Connection,
    ids: Iterable[str],
    not_before: float,
    reason: str,
    errcode: int | None,
    errmsg: str | None,
    now: float,
    *,
    was: str = PENDING,
) -> None:
    """Rows in status `was` pending again, due at `not_before`, with why. `was` is 'sent' for a
    work notice DingTalk took and then flow-controlled: sent again with the same content, which
    DingTalk's dedup absorbs for whoever has it already."""
    conn.executemany(
        "UPDATE outbox SET status = 'pending', attempts = attempts + 1, not_before = ?,"
        " reason = ?, errcode = ?, errmsg = ?, updated_at = ? WHERE id = ? AND status = ?",
        [(not_before, reason, errcode, errmsg, now, i, was) for i in ids],
    )


def dead_letter(
    conn: sqlite3.Connection,
    ids: Iterable[str],
    reason: str,
    errcode: int | None,
    errmsg: str | None,
    now: float,
) -> None:
    conn.executemany(
        "UPDATE outbox SET status = 'dead', attempts = attempts + 1, reason = ?, errcode = ?,"
        " errmsg = ?, updated_at = ? WHERE id = ?",
        [(reason, errcode, errmsg, now, i) for i in ids],
    )


def listing(
    conn: sqlite3.Connection, status: str | None = None, target: str | None = None, limit: int = 100
) -> list[Row]:
    where, args = ["1 = 1"], []
    if status:
        where.append("status = ?")
        args.append(status)
    if target:
        where.append("target = ?")
        args.append(target)
    cursor = conn.execute(
        f"SELECT {_COLUMNS} FROM outbox WHERE {' AND '.join(where)}"
        " ORDER BY created_at, id LIMIT ?",
        (*args, limit),
    )
    return [_row(r) for r in cursor.fetchall()]


def find(conn: sqlite3.Connection, part: str) -> list[Row]:
    """Rows whose id contains `part` (at most 2: enough to tell unique from ambiguous). Ids
    start with the time, so people copy their end (`outbox list` shows the last 12 digits)."""
    cursor = conn.execute(
        f"SELECT {_COLUMNS} FROM outbox WHERE id LIKE ? ESCAPE '\\' ORDER BY created_at LIMIT 2",
        ("%" + part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",),
    )
    return [_row(r) for r in cursor.fetchall()]


def revive(conn: sqlite3.Connection, ids: Iterable[str], now: float) -> int:
    """Dead letters back to pending, due now, attempts reset."""
    cursor = conn.executemany(
        "UPDATE outbox SET status = 'pending', not_before = ?, attempts = 0, parts_sent = 0,"
        " updated_at = ? WHERE id = ? AND status = 'dead'",
        [(now, now, i) for i in ids],
    )
    return cursor.rowcount


def purge(conn: sqlite3.Connection, ids: Iterable[str]) -> int:
    cursor = conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
    return cursor.rowcount
