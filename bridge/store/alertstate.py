"""Alerts posted to `prometheus` inputs (table `posted_alerts`), as Alertmanager keeps them.

One row per (input, label fingerprint): the alert's latest state, merged by
bridge/alerting/alertstate.py, written in the transaction that commits the events it caused, so
the state and the messages never disagree after a crash. The sweep (pipeline/expiry.py) claims
firing rows whose `ends_at` has passed, marking them resolved in the transaction that queues
their resolved messages: on a database shared by replicas the claim is one UPDATE of rows
picked FOR UPDATE SKIP LOCKED (as outbox claims), so each expired alert is resolved by exactly
one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge import jsontext
from bridge.alerting.alertstate import TrackedAlert
from bridge.store.locks import ALERT_STATE, Locks
from bridge.store.sqlconn import Connection, Dialect

_COLUMNS = (
    "input, fingerprint, labels, annotations, starts_at, ends_at, generator_url, resolved,"
    " timeout, updated_at"
)


def _row(r: Sequence[Any]) -> TrackedAlert:
    return TrackedAlert(
        input=str(r[0]),
        fingerprint=str(r[1]),
        labels=jsontext.loads(r[2]),
        annotations=jsontext.loads(r[3]),
        starts_at=float(r[4]),
        ends_at=float(r[5]),
        generator_url=str(r[6]),
        resolved=bool(r[7]),
        timeout=bool(r[8]),
        updated_at=float(r[9]),
    )


class SqlAlertState:
    def __init__(self, conn: Connection, dialect: Dialect, locks: Locks) -> None:
        self._conn = conn
        self._dialect = dialect
        self._locks = locks

    def get(self, input_name: str, fingerprint: str) -> TrackedAlert | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM posted_alerts WHERE input = ? AND fingerprint = ?",
            (input_name, fingerprint),
        ).fetchone()
        return _row(row) if row is not None else None

    def get_for_update(self, input_name: str, fingerprint: str) -> TrackedAlert | None:
        # A name lock, not a row lock: the first post of an alert has no row to lock yet.
        self._locks.lock(ALERT_STATE, f"{input_name}\n{fingerprint}")
        return self.get(input_name, fingerprint)

    def put(self, alert: TrackedAlert) -> None:
        self._conn.execute(
            f"INSERT INTO posted_alerts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (input, fingerprint) DO UPDATE SET labels = excluded.labels,"
            " annotations = excluded.annotations, starts_at = excluded.starts_at,"
            " ends_at = excluded.ends_at, generator_url = excluded.generator_url,"
            " resolved = excluded.resolved, timeout = excluded.timeout,"
            " updated_at = excluded.updated_at",
            (
                alert.input,
                alert.fingerprint,
                jsontext.dumps(dict(alert.labels), sort_keys=True),
                jsontext.dumps(dict(alert.annotations), sort_keys=True),
                alert.starts_at,
                alert.ends_at,
                alert.generator_url,
                int(alert.resolved),
                int(alert.timeout),
                alert.updated_at,
            ),
        )

    def claim_expired(self, input_name: str, now: float, limit: int) -> list[TrackedAlert]:
        # Picked in a CTE (MATERIALIZED: run once, so the LIMIT holds) that on PostgreSQL locks
        # what it picks and skips what another replica's claim locked; a row another claim
        # committed since this one's snapshot is checked again when locked, and dropped.
        rows = self._conn.execute(
            "WITH picked AS MATERIALIZED (SELECT fingerprint FROM posted_alerts"
            " WHERE input = ? AND resolved = 0 AND ends_at <= ?"
            f" ORDER BY ends_at, fingerprint LIMIT ?{self._dialect.row_locks})"
            " UPDATE posted_alerts SET resolved = 1, updated_at = ?"
            " WHERE input = ? AND resolved = 0 AND fingerprint IN (SELECT fingerprint FROM picked)"
            f" RETURNING {_COLUMNS}",
            (input_name, now, limit, now, input_name),
        ).fetchall()
        return sorted((_row(r) for r in rows), key=lambda a: (a.ends_at, a.fingerprint))

    def next_expiry(self, inputs: Sequence[str]) -> float | None:
        if not inputs:
            return None
        marks = ", ".join("?" * len(inputs))
        row = self._conn.execute(
            f"SELECT MIN(ends_at) FROM posted_alerts WHERE resolved = 0 AND input IN ({marks})",
            tuple(inputs),
        ).fetchone()
        return float(row[0]) if row is not None and row[0] is not None else None

    def listing(self, input_name: str) -> list[TrackedAlert]:
        return [
            _row(r)
            for r in self._conn.execute(
                f"SELECT {_COLUMNS} FROM posted_alerts WHERE input = ?"
                " ORDER BY starts_at, fingerprint",
                (input_name,),
            )
        ]

    def prune(self, resolved_before: float, untouched_before: float) -> int:
        gone = self._conn.execute(
            "DELETE FROM posted_alerts WHERE (resolved = 1 AND updated_at < ?) OR updated_at < ?",
            (resolved_before, untouched_before),
        )
        return max(0, gone.rowcount)
