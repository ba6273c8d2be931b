"""The notification log, acknowledgements and aggregation groups, in the SQLite store.

nflog: per (rule, key), the alerts that were firing/resolved at the last notification, and when.
groups/group_alerts: alerts held for a rule with group_by until the group's next flush.

Replicas sharing a database decide about one alert group in turn: a decision reads the entry it
may replace with `entry_for_update` (the entry's name locked until the transaction ends, see
store/locks.py), a due group is flushed by the one transaction that `claim`s it, and holding an
alert locks its group's row, so a flush in progress either sees the new alert or is over first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from bridge import jsontext
from bridge.alerting.dedup import LogEntry
from bridge.model import Event
from bridge.store.codec import event_from_json, event_to_json
from bridge.store.locks import NFLOG, Locks
from bridge.store.records import Ack, Group
from bridge.store.sqlconn import Connection


class SqlAlertLog:
    """The notification log (nflog)."""

    def __init__(self, conn: Connection, locks: Locks) -> None:
        self._conn = conn
        self._locks = locks

    def entry_for_update(self, rule: str, key: str) -> LogEntry | None:
        """The entry, its (rule, key) locked until the transaction ends: of two transactions
        deciding about one alert group at once, the second reads what the first committed."""
        self._locks.lock(NFLOG, f"{rule}\n{key}")
        return self.get_entry(rule, key)

    def get_entry(self, rule: str, key: str) -> LogEntry | None:
        row = self._conn.execute(
            "SELECT firing, resolved, at FROM nflog WHERE rule = ? AND key = ?", (rule, key)
        ).fetchone()
        if row is None:
            return None
        firing, resolved = jsontext.loads(row[0]), jsontext.loads(row[1])
        return LogEntry(frozenset(firing), frozenset(resolved), float(row[2]))

    def put_entry(
        self,
        rule: str,
        key: str,
        firing: Iterable[str],
        resolved: Iterable[str],
        now: float,
    ) -> None:
        firing_list = sorted(firing)
        if not firing_list:  # everything resolved and told: the next firing is news again
            self._conn.execute("DELETE FROM nflog WHERE rule = ? AND key = ?", (rule, key))
            return
        self._conn.execute(
            "INSERT INTO nflog (rule, key, firing, resolved, at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (rule, key) DO UPDATE SET firing = excluded.firing,"
            " resolved = excluded.resolved, at = excluded.at",
            (rule, key, jsontext.dumps(firing_list), jsontext.dumps(sorted(resolved)), now),
        )

    def prune_entries(self, older_than: float) -> int:
        pruned = self._conn.execute("DELETE FROM nflog WHERE at < ?", (older_than,)).rowcount
        self._conn.execute("DELETE FROM acks WHERE at < ?", (older_than,))
        return int(pruned)

    def firing(self) -> list[tuple[str, str]]:
        """(rule, key) of every alert group firing now, oldest notification first."""
        rows = self._conn.execute("SELECT rule, key FROM nflog ORDER BY at")
        return [(str(rule), str(key)) for rule, key in rows]

    def firing_alerts(self) -> frozenset[str]:
        rows = self._conn.execute("SELECT firing FROM nflog").fetchall()
        return frozenset(str(f) for (firing,) in rows for f in jsontext.loads(firing))


class SqlAcks:
    """Acknowledgements from the chat, by the event's fingerprint (what `short_id` shows)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def acknowledge(self, fingerprint: str, by: str, now: float) -> None:
        self._conn.execute(
            'INSERT INTO acks (key, "by", at) VALUES (?, ?, ?)'
            ' ON CONFLICT (key) DO UPDATE SET "by" = excluded."by", at = excluded.at',
            (fingerprint, by, now),
        )

    def acknowledged_by(self, fingerprint: str) -> str | None:
        row = self._conn.execute('SELECT "by" FROM acks WHERE key = ?', (fingerprint,)).fetchone()
        return str(row[0]) if row else None

    def forget(self, fingerprint: str) -> None:
        self._conn.execute("DELETE FROM acks WHERE key = ?", (fingerprint,))

    def listing(self, limit: int) -> list[Ack]:
        rows = self._conn.execute(
            'SELECT key, "by", at FROM acks ORDER BY at DESC, key LIMIT ?', (limit,)
        ).fetchall()
        return [Ack(str(key), str(by), float(at)) for key, by, at in rows]


class SqlGroups:
    """Aggregation groups and the alerts they hold."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(
        self,
        rule: str,
        key: str,
        labels: Mapping[str, str],
        members: Iterable[tuple[str, str, Event]],
        now: float,
        group_wait: float,
    ) -> None:
        """Hold `members` (fingerprint, status, single-alert event) in the group, creating it with
        its first flush `group_wait` from now. The group's row is written (unchanged when it
        exists) to lock it: a replica flushing it meanwhile finishes first, and a group it ended
        is created again, so no member is left in a group that is gone."""
        self._conn.execute(
            "INSERT INTO groups (rule, key, labels, created_at, next_flush, flushed)"
            " VALUES (?, ?, ?, ?, ?, 0)"
            " ON CONFLICT (rule, key) DO UPDATE SET next_flush = groups.next_flush",
            (rule, key, json.dumps(dict(labels), sort_keys=True), now, now + group_wait),
        )
        self._conn.executemany(
            "INSERT INTO group_alerts (rule, key, fingerprint, status, event, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (rule, key, fingerprint) DO UPDATE SET"
            " status = excluded.status, event = excluded.event, updated_at = excluded.updated_at",
            [(rule, key, fp, status, event_to_json(ev), now) for fp, status, ev in members],
        )

    def due(self, now: float) -> list[Group]:
        rows = self._conn.execute(
            "SELECT rule, key, labels, next_flush, flushed FROM groups WHERE next_flush <= ?"
            " ORDER BY next_flush",
            (now,),
        ).fetchall()
        return [Group(r[0], r[1], json.loads(r[2]), float(r[3]), bool(r[4])) for r in rows]

    def flush_at(self, rule: str, key: str) -> float | None:
        row = self._conn.execute(
            "SELECT next_flush FROM groups WHERE rule = ? AND key = ?", (rule, key)
        ).fetchone()
        return float(row[0]) if row is not None else None

    def claim(self, rule: str, key: str, now: float) -> bool:
        """The group is still due at `now` and this transaction flushes it: its row locked until
        the end. False when another transaction flushed (or ended) it since it was seen due: a
        concurrent claim waits for that one, then finds the group's next flush moved on."""
        claimed = self._conn.execute(
            "UPDATE groups SET flushed = flushed WHERE rule = ? AND key = ? AND next_flush <= ?",
            (rule, key, now),
        ).rowcount
        return bool(claimed)

    def next_flush_at(self) -> float | None:
        value = self._conn.execute("SELECT MIN(next_flush) FROM groups").fetchone()[0]
        return float(value) if value is not None else None

    def members(self, rule: str, key: str) -> list[Event]:
        rows = self._conn.execute(
            "SELECT event FROM group_alerts WHERE rule = ? AND key = ?"
            " ORDER BY updated_at, fingerprint",
            (rule, key),
        ).fetchall()
        return [event_from_json(r[0]) for r in rows]

    def after_flush(self, rule: str, key: str, now: float, group_interval: float) -> None:
        """Resolved alerts leave the group once told; an empty group ends."""
        self._conn.execute(
            "DELETE FROM group_alerts WHERE rule = ? AND key = ? AND status = 'resolved'",
            (rule, key),
        )
        left = self._conn.execute(
            "SELECT COUNT(*) FROM group_alerts WHERE rule = ? AND key = ?", (rule, key)
        ).fetchone()[0]
        if left:
            self._conn.execute(
                "UPDATE groups SET next_flush = ?, flushed = 1 WHERE rule = ? AND key = ?",
                (now + group_interval, rule, key),
            )
        else:
            self._conn.execute("DELETE FROM groups WHERE rule = ? AND key = ?", (rule, key))

    def drop(self, rule: str, key: str) -> None:
        self._conn.execute("DELETE FROM group_alerts WHERE rule = ? AND key = ?", (rule, key))
        self._conn.execute("DELETE FROM groups WHERE rule = ? AND key = ?", (rule, key))
