"""The outbox table: accepted messages until DingTalk takes them, and dead letters after.

Rows move: pending -> (delivered: deleted) | (retry: pending, later not_before) | dead.
A work notice DingTalk took waits as 'sent' until getsendresult says who received it
(store/notices.py has that part of the lifecycle).
A dead letter keeps the reason, DingTalk's errcode and errmsg; `outbox retry` makes it pending.

Claims: a sender takes pending rows by claiming them (`claim`) for a lease, so several replicas
(or processes) sharing the outbox never send a row at once; a claim ends with the row's outcome,
or when its lease runs out (the claimer died: the row is claimable again, and sent at most once
more). An outcome given with its `owner` changes only rows no other claimer took since: a replica
whose lease ran out while it waited records nothing over the replica that took the rows.
Only `delivered` applies whoever holds the row: DingTalk has it, and one more send at most is
what the other holder may still make.
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge.model import Delivery
from bridge.store.codec import event_to_json, like_containing, message_to_json
from bridge.store.records import PENDING, Row, StoredRow
from bridge.store.sqlconn import SQLITE, Connection, Dialect, held_by

_COLUMNS = (
    "id, target, rule, fingerprint, event_status, message, status, created_at, not_before, "
    "attempts, parts_sent, reason, errcode, errmsg, updated_at, event"
)


def _row(values: tuple[object, ...]) -> Row:
    return StoredRow(tuple(values)).decode()


class SqlOutbox:
    """The outbox's operations (api.Outbox) on one connection."""

    def __init__(self, conn: Connection, dialect: Dialect = SQLITE) -> None:
        self._conn = conn
        self._dialect = dialect

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
        self._dialect.queued(self._conn, (r[1] for r in rows))
        return len(rows)

    def claim(
        self, target: str, owner: str, now: float, until: float, limit: int
    ) -> list[StoredRow]:
        """Up to `limit` due pending rows of `target` that nobody else holds (held by `owner`
        already, or by nobody, or past their lease), now `owner`'s until `until`; oldest first.

        The rows are picked in a CTE (MATERIALIZED: run once, so the LIMIT holds) that locks
        what it picks on PostgreSQL and skips what another claim locked meanwhile; a row
        another claim committed since this one's snapshot is re-checked against the
        conditions when locked, and dropped."""
        cursor = self._conn.execute(
            "WITH picked AS MATERIALIZED (SELECT id FROM outbox WHERE target = ?"
            " AND status = 'pending' AND not_before <= ?"
            " AND (claimed_by IS NULL OR claimed_by = ? OR claimed_until <= ?)"
            f" ORDER BY created_at, id LIMIT ?{self._dialect.row_locks})"
            " UPDATE outbox SET claimed_by = ?, claimed_until = ?"
            f" WHERE id IN (SELECT id FROM picked) RETURNING {_COLUMNS}",
            (target, now, owner, now, limit, owner, until),
        )
        rows = [StoredRow(tuple(r)) for r in cursor.fetchall()]
        return sorted(rows, key=lambda r: r.order)  # RETURNING keeps no order

    def renew(self, ids: Iterable[str], owner: str, until: float) -> list[str]:
        """`owner`'s claim of the pending rows `ids` (those it holds, or no one does) runs
        until `until`: which ids those were."""
        held = []
        condition, of = held_by(owner)
        for id_ in ids:
            cursor = self._conn.execute(
                "UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id = ?"
                f" AND status = 'pending'{condition}",
                (owner, until, id_, *of),
            )
            if cursor.rowcount:
                held.append(id_)
        return held

    def release(self, owner: str, ids: Iterable[str] | None = None) -> int:
        """`owner` lets go of rows `ids` (all it holds when None), unsent: claimable by anyone
        at once (and the other replicas told so); how many it held."""
        where, args = "claimed_by = ?", [owner]
        if ids is not None:
            wanted = list(ids)
            if not wanted:
                return 0
            where += f" AND id IN ({', '.join('?' * len(wanted))})"
            args += wanted
        cursor = self._conn.execute(
            f"UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE {where}"
            " RETURNING target",
            args,
        )
        targets = [str(t) for (t,) in cursor.fetchall()]
        self._dialect.queued(self._conn, targets)
        return len(targets)

    def claimers(self, now: float) -> set[str]:
        """The owners holding rows or notice tasks with a lease running past `now`."""
        cursor = self._conn.execute(
            "SELECT claimed_by FROM outbox WHERE claimed_until > ?"
            " UNION SELECT claimed_by FROM notice_tasks WHERE claimed_until > ?",
            (now, now),
        )
        return {str(owner) for (owner,) in cursor.fetchall()}

    def claimed(self, now: float) -> dict[str, int]:
        """Per target: pending rows whose claim still runs (being sent now)."""
        rows = self._conn.execute(
            "SELECT target, COUNT(*) FROM outbox WHERE status = 'pending'"
            " AND claimed_until > ? GROUP BY target",
            (now,),
        ).fetchall()
        return {str(t): int(n) for t, n in rows}

    def due(self, target: str, now: float, limit: int) -> list[Row]:
        """Pending rows of `target` whose time has come and no one holds, oldest first."""
        cursor = self._conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE target = ? AND status = 'pending'"
            " AND not_before <= ? AND (claimed_until IS NULL OR claimed_until <= ?)"
            " ORDER BY created_at, id LIMIT ?",
            (target, now, now, limit),
        )
        return [_row(r) for r in cursor.fetchall()]

    def next_due_at(self, target: str) -> float | None:
        value = self._conn.execute(
            "SELECT MIN(not_before) FROM outbox WHERE target = ? AND status = 'pending'", (target,)
        ).fetchone()[0]
        return float(value) if value is not None else None

    def due_at(self, target: str, now: float) -> float | None:
        # In sending order (outbox_queue) up to the first due row: the head of a queue being
        # drained is due, so this reads a row or two where MIN(not_before) reads the index's
        # every entry of the target (20 ms at a backlog of 100,000; bench.backlog).
        row = self._conn.execute(
            "SELECT not_before FROM outbox WHERE target = ? AND status = 'pending'"
            " AND not_before <= ? ORDER BY created_at, id LIMIT 1",
            (target, now),
        ).fetchone()
        return float(row[0]) if row is not None else self.next_due_at(target)

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

    def progress(self, id_: str, parts_sent: int, now: float, *, owner: str | None = None) -> None:
        held, of = held_by(owner)
        self._conn.execute(
            f"UPDATE outbox SET parts_sent = ?, updated_at = ? WHERE id = ?{held}",
            (parts_sent, now, id_, *of),
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
        owner: str | None = None,
    ) -> None:
        """Rows in status `was` pending again, due at `not_before`, with why. `was` is 'sent' for a
        work notice DingTalk took and then flow-controlled: sent again with the same content, which
        DingTalk's dedup absorbs for whoever has it already."""
        held, of = held_by(owner)
        self._conn.executemany(
            "UPDATE outbox SET status = 'pending', attempts = attempts + 1, not_before = ?,"
            " reason = ?, errcode = ?, errmsg = ?, updated_at = ?, claimed_by = NULL,"
            f" claimed_until = NULL WHERE id = ? AND status = ?{held}",
            [(not_before, reason, errcode, errmsg, now, i, was, *of) for i in ids],
        )

    def dead_letter(
        self,
        ids: Iterable[str],
        reason: str,
        errcode: int | None,
        errmsg: str | None,
        now: float,
        *,
        owner: str | None = None,
    ) -> None:
        held, of = held_by(owner)
        self._conn.executemany(
            "UPDATE outbox SET status = 'dead', attempts = attempts + 1, reason = ?, errcode = ?,"
            " errmsg = ?, updated_at = ?, claimed_by = NULL, claimed_until = NULL"
            f" WHERE id = ?{held}",
            [(reason, errcode, errmsg, now, i, *of) for i in ids],
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
        targets = self._each(
            "UPDATE outbox SET status = 'pending', not_before = ?, attempts = 0,"
            " parts_sent = 0, updated_at = ?, claimed_by = NULL, claimed_until = NULL"
            " WHERE id = ? AND status = 'dead' RETURNING target",
            [(now, now, i) for i in ids],
        )
        self._dialect.queued(self._conn, targets)
        return len(targets)

    def due_now(self, ids: Iterable[str], now: float) -> None:
        targets = self._each(
            "UPDATE outbox SET not_before = ? WHERE id = ? AND status = 'pending' RETURNING target",
            [(now, i) for i in ids],
        )
        self._dialect.queued(self._conn, targets)

    def _each(self, sql: str, rows: Iterable[tuple[object, ...]]) -> list[str]:
        """`sql` (an UPDATE ... RETURNING target) run for each of `rows`: the targets changed
        (executemany cannot return rows on every driver)."""
        return [str(t) for args in rows for (t,) in self._conn.execute(sql, args).fetchall()]

    def dead_count(self) -> int:
        return int(
            self._conn.execute("SELECT COUNT(*) FROM outbox WHERE status = 'dead'").fetchone()[0]
        )

    def purge(self, ids: Iterable[str]) -> int:
        cursor = self._conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
        return cursor.rowcount
