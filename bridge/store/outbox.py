"""The outbox table: accepted messages until DingTalk takes them, and dead letters after.

Rows move: pending -> (delivered: deleted) | (retry: pending, later not_before) | dead.
A work notice DingTalk took waits as 'sent' until getsendresult says who received it
(store/notices.py has that part of the lifecycle).
A dead letter keeps the reason, DingTalk's errcode and errmsg; `outbox retry` makes it pending.
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge.model import Delivery
from bridge.store.codec import (
    event_from_json,
    event_to_json,
    like_containing,
    message_from_json,
    message_to_json,
)
from bridge.store.records import PENDING, Row, UnreadableRow
from bridge.store.sqlconn import Connection

_COLUMNS = (
    "id, target, rule, fingerprint, event_status, message, status, created_at, not_before, "
    "attempts, parts_sent, reason, errcode, errmsg, updated_at, event"
)


def _row(values: tuple[object, ...]) -> Row:
    fields = list(values)
    try:
        fields[5] = message_from_json(str(fields[5]))
        fields[15] = event_from_json(str(fields[15])) if fields[15] is not None else None
    except Exception as exc:
        raise UnreadableRow(str(fields[0]), str(fields[2]), f"{type(exc).__name__}: {exc}") from exc
    return Row(*fields)  # type: ignore[arg-type]


class SqlOutbox:
    """The outbox's operations (api.Outbox) on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def enqueue(self, deliveries: Iterable[Delivery], now: float) -> int:
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
        self._conn.executemany(
            "INSERT INTO outbox (id, target, rule, fingerprint, event_status, message, status,"
            " created_at, not_before, attempts, parts_sent, updated_at, event)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return len(rows)

    def due(self, target: str, now: float, limit: int) -> list[Row]:
        """Pending rows of `target` whose time has come, oldest first."""
        cursor = self._conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE target = ? AND status = 'pending'"
            " AND not_before <= ? ORDER BY created_at, id LIMIT ?",
            (target, now, limit),
        )
        return [_row(r) for r in cursor.fetchall()]

    def next_due_at(self, target: str) -> float | None:
        value = self._conn.execute(
            "SELECT MIN(not_before) FROM outbox WHERE target = ? AND status = 'pending'", (target,)
        ).fetchone()[0]
        return float(value) if value is not None else None

    def pending_count(self, target: str | None = None) -> int:
        query = "SELECT COUNT(*) FROM outbox WHERE status = 'pending'"
        if target is None:
            return int(self._conn.execute(query).fetchone()[0])
        return int(self._conn.execute(query + " AND target = ?", (target,)).fetchone()[0])

    def depth(self) -> dict[str, tuple[int, float | None]]:
        """Per target: (pending messages, created_at of the oldest)."""
        rows = self._conn.execute(
            "SELECT target, COUNT(*), MIN(created_at) FROM outbox WHERE status = 'pending'"
            " GROUP BY target"
        ).fetchall()
        return {str(t): (int(n), float(oldest)) for t, n, oldest in rows}

    def delivered(self, ids: Iterable[str]) -> None:
        self._conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def progress(self, id_: str, parts_sent: int, now: float) -> None:
        self._conn.execute(
            "UPDATE outbox SET parts_sent = ?, updated_at = ? WHERE id = ?", (parts_sent, now, id_)
        )

    def retry_later(
        self,
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
        self._conn.executemany(
            "UPDATE outbox SET status = 'pending', attempts = attempts + 1, not_before = ?,"
            " reason = ?, errcode = ?, errmsg = ?, updated_at = ? WHERE id = ? AND status = ?",
            [(not_before, reason, errcode, errmsg, now, i, was) for i in ids],
        )

    def dead_letter(
        self,
        ids: Iterable[str],
        reason: str,
        errcode: int | None,
        errmsg: str | None,
        now: float,
    ) -> None:
        self._conn.executemany(
            "UPDATE outbox SET status = 'dead', attempts = attempts + 1, reason = ?, errcode = ?,"
            " errmsg = ?, updated_at = ? WHERE id = ?",
            [(reason, errcode, errmsg, now, i) for i in ids],
        )

    def listing(
        self, status: str | None = None, target: str | None = None, limit: int = 100
    ) -> list[Row]:
        where, args = ["1 = 1"], []
        if status:
            where.append("status = ?")
            args.append(status)
        if target:
            where.append("target = ?")
            args.append(target)
        cursor = self._conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE {' AND '.join(where)}"
            " ORDER BY created_at, id LIMIT ?",
            (*args, limit),
        )
        return [_row(r) for r in cursor.fetchall()]

    def find(self, part: str) -> list[Row]:
        """Rows whose id contains `part` (at most 2: enough to tell unique from ambiguous). Ids
        start with the time, so people copy their end (`outbox list` shows the last 12 digits)."""
        cursor = self._conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE id LIKE ? ESCAPE '\\'"
            " ORDER BY created_at LIMIT 2",
            (like_containing(part),),
        )
        return [_row(r) for r in cursor.fetchall()]

    def revive(self, ids: Iterable[str], now: float) -> int:
        """Dead letters back to pending, due now, attempts reset."""
        cursor = self._conn.executemany(
            "UPDATE outbox SET status = 'pending', not_before = ?, attempts = 0, parts_sent = 0,"
            " updated_at = ? WHERE id = ? AND status = 'dead'",
            [(now, now, i) for i in ids],
        )
        return cursor.rowcount

    def due_now(self, ids: Iterable[str], now: float) -> None:
        self._conn.executemany(
            "UPDATE outbox SET not_before = ? WHERE id = ? AND status = 'pending'",
            [(now, i) for i in ids],
        )

    def dead_count(self) -> int:
        return int(
            self._conn.execute("SELECT COUNT(*) FROM outbox WHERE status = 'dead'").fetchone()[0]
        )

    def purge(self, ids: Iterable[str]) -> int:
        cursor = self._conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
        return cursor.rowcount
