"""Escalations (store/records.py's Escalation): one row per alert of a rule with `escalate`, from
its first firing (the commit that queued its message writes it) until its resolution is counted.

Every change is a compare-and-set naming the firing (`started_at`) and the state it expects: two
replicas (or a replica and a restarted one) that find the same step due both try `advance`, and
one row update wins; the loser's transaction queues nothing. On PostgreSQL the second UPDATE
waits for the first to commit and then finds `steps_done` moved on; SQLite has one writer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from bridge.store.records import Escalation
from bridge.store.sqlconn import Connection

ACK = "ack"
RESOLVE = "resolve"
_COLUMNS = "rule, key, fingerprint, labels, started_at, steps_done, stopped"


def _escalation(values: Sequence[object]) -> Escalation:
    rule, key, fingerprint, labels, started, done, stopped = values
    return Escalation(
        str(rule),
        str(key),
        str(fingerprint),
        dict(json.loads(str(labels))),
        float(started),  # type: ignore[arg-type]
        int(done),  # type: ignore[call-overload]
        None if stopped is None else str(stopped),
    )


class SqlEscalations:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def fired(
        self, rule: str, key: str, fingerprint: str, labels: Mapping[str, str], now: float
    ) -> bool:
        """The alert fires: its escalation starts now, unless one runs (or stopped by an ack)
        already; one that resolved starts over. Whether it started."""
        cursor = self._conn.execute(
            f"INSERT INTO escalations ({_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, 0, NULL, ?)"
            " ON CONFLICT (rule, key) DO UPDATE SET fingerprint = excluded.fingerprint,"
            " labels = excluded.labels, started_at = excluded.started_at, steps_done = 0,"
            " stopped = NULL, updated_at = excluded.updated_at"
            f" WHERE escalations.stopped = '{RESOLVE}'",
            (
                rule,
                key,
                fingerprint,
                json.dumps(dict(labels), ensure_ascii=False, sort_keys=True),
                now,
                now,
            ),
        )
        return cursor.rowcount == 1

    def resolved(self, rule: str, key: str, now: float) -> None:
        """The alert resolved: a running escalation stops (kept until the worker counts it);
        one an ack stopped is done with."""
        self._conn.execute(
            f"DELETE FROM escalations WHERE rule = ? AND key = ? AND stopped = '{ACK}'",
            (rule, key),
        )
        self._conn.execute(
            f"UPDATE escalations SET stopped = '{RESOLVE}', updated_at = ?"
            " WHERE rule = ? AND key = ? AND stopped IS NULL",
            (now, rule, key),
        )

    def running(self) -> list[Escalation]:
        """Every escalation not stopped, oldest first."""
        return self._select("stopped IS NULL")

    def ended(self) -> list[Escalation]:
        """Escalations their alert's resolution stopped, not yet counted."""
        return self._select(f"stopped = '{RESOLVE}'")

    def _select(self, where: str) -> list[Escalation]:
        cursor = self._conn.execute(
            f"SELECT {_COLUMNS} FROM escalations WHERE {where} ORDER BY started_at, rule, key"
        )
        return [_escalation(row) for row in cursor.fetchall()]

    def advance(self, one: Escalation, step: int, now: float) -> bool:
        """Claim step `step` (0-based) of `one`'s firing: True for the one caller that moves it
        on; False when another did, or the escalation stopped or started over meanwhile."""
        cursor = self._conn.execute(
            "UPDATE escalations SET steps_done = ?, updated_at = ?"
            " WHERE rule = ? AND key = ? AND started_at = ? AND steps_done = ?"
            " AND stopped IS NULL",
            (step + 1, now, one.rule, one.key, one.started_at, step),
        )
        return cursor.rowcount == 1

    def stop(self, one: Escalation, why: str, now: float) -> bool:
        """Stop `one`'s firing (an ack): True for the one caller that stopped it."""
        cursor = self._conn.execute(
            "UPDATE escalations SET stopped = ?, updated_at = ?"
            " WHERE rule = ? AND key = ? AND started_at = ? AND stopped IS NULL",
            (why, now, one.rule, one.key, one.started_at),
        )
        return cursor.rowcount == 1

    def forget(self, one: Escalation) -> bool:
        """Forget `one`, resolved: True for the one caller that did (it counts the stop)."""
        cursor = self._conn.execute(
            "DELETE FROM escalations WHERE rule = ? AND key = ? AND started_at = ?"
            f" AND stopped = '{RESOLVE}'",
            (one.rule, one.key, one.started_at),
        )
        return cursor.rowcount == 1

    def drop(self, rule: str) -> None:
        """Forget the escalations of `rule`, which no longer escalates (removed, or its steps)."""
        self._conn.execute("DELETE FROM escalations WHERE rule = ?", (rule,))
