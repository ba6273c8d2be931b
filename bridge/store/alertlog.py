"""The notification log and aggregation groups, in the state store.

nflog: per (rule, key), the alerts that were firing/resolved at the last notification, and when.
groups/group_alerts: alerts held for a rule with group_by until the group's next flush.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bridge.alerting.dedup import LogEntry
from bridge.model import Event
from bridge.store.codec import event_from_json, event_to_json


def get_entry(conn: sqlite3.Connection, rule: str, key: str) -> LogEntry | None:
    row = conn.execute(
        "SELECT firing, resolved, at FROM nflog WHERE rule = ? AND key = ?", (rule, key)
    ).fetchone()
    if row is None:
        return None
    return LogEntry(frozenset(json.loads(row[0])), frozenset(json.loads(row[1])), float(row[2]))


def put_entry(
    conn: sqlite3.Connection,
    rule: str,
    key: str,
    firing: Iterable[str],
    resolved: Iterable[str],
    now: float,
) -> None:
    firing_list = sorted(firing)
    if not firing_list:  # everything resolved and told: the next firing is news again
        conn.execute("DELETE FROM nflog WHERE rule = ? AND key = ?", (rule, key))
        return
    conn.execute(
        "INSERT OR REPLACE INTO nflog (rule, key, firing, resolved, at) VALUES (?, ?, ?, ?, ?)",
        (rule, key, json.dumps(firing_list), json.dumps(sorted(resolved)), now),
    )


def prune_entries(conn: sqlite3.Connection, older_than: float) -> int:
    pruned = conn.execute("DELETE FROM nflog WHERE at < ?", (older_than,)).rowcount
    conn.execute("DELETE FROM acks WHERE at < ?", (older_than,))
    return int(pruned)


def firing(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(rule, key) of every alert group firing now, oldest notification first."""
    rows = conn.execute("SELECT rule, key FROM nflog ORDER BY at")
    return [(str(rule), str(key)) for rule, key in rows]


# Acknowledgements from the chat, by the event's fingerprint (what `short_id` shows).


def acknowledge(conn: sqlite3.Connection, fingerprint: str, by: str, now: float) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO acks (key, by, at) VALUES (?, ?, ?)", (fingerprint, by, now)
    )


def acknowledged_by(conn: sqlite3.Connection, fingerprint: str) -> str | None:
    row = conn.execute("SELECT by FROM acks WHERE key = ?", (fingerprint,)).fetchone()
    return str(row[0]) if row else None


def forget_ack(conn: sqlite3.Connection, fingerprint: str) -> None:
    conn.execute("DELETE FROM acks WHERE key = ?", (fingerprint,))


@dataclass(frozen=True)
class Group:
    rule: str
    key: str
    labels: Mapping[str, str]
    next_flush: float
    flushed: bool


def add_to_group(
    conn: sqlite3.Connection,
    rule: str,
    key: str,
    labels: Mapping[str, str],
    members: Iterable[tuple[str, str, Event]],
    now: float,
    group_wait: float,
) -> None:
    """Hold `members` (fingerprint, status, single-alert event) in the group, creating it with
    its first flush `group_wait` from now."""
    conn.execute(
        "INSERT OR IGNORE INTO groups (rule, key, labels, created_at, next_flush, flushed)"
        " VALUES (?, ?, ?, ?, ?, 0)",
        (rule, key, json.dumps(dict(labels), sort_keys=True), now, now + group_wait),
    )
    conn.executemany(
        "INSERT OR REPLACE INTO group_alerts (rule, key, fingerprint, status, event, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(rule, key, fp, status, event_to_json(ev), now) for fp, status, ev in members],
    )


def due_groups(conn: sqlite3.Connection, now: float) -> list[Group]:
    rows = conn.execute(
        "SELECT rule, key, labels, next_flush, flushed FROM groups WHERE next_flush <= ?"
        " ORDER BY next_flush",
        (now,),
    ).fetchall()
    return [Group(r[0], r[1], json.loads(r[2]), float(r[3]), bool(r[4])) for r in rows]


def group_flush_at(conn: sqlite3.Connection, rule: str, key: str) -> float | None:
    """When the group (rule, key) flushes next; None when it holds nothing now."""
    row = conn.execute(
        "SELECT next_flush FROM groups WHERE rule = ? AND key = ?", (rule, key)
    ).fetchone()
    return float(row[0]) if row is not None else None


def next_flush_at(conn: sqlite3.Connection) -> float | None:
    value = conn.execute("SELECT MIN(next_flush) FROM groups").fetchone()[0]
    return float(value) if value is not None else None


def group_members(conn: sqlite3.Connection, rule: str, key: str) -> list[Event]:
    rows = conn.execute(
        "SELECT event FROM group_alerts WHERE rule = ? AND key = ?"
        " ORDER BY updated_at, fingerprint",
        (rule, key),
    ).fetchall()
    return [event_from_json(r[0]) for r in rows]


def after_flush(
    conn: sqlite3.Connection, rule: str, key: str, now: float, group_interval: float
) -> None:
    """Resolved alerts leave the group once told; an empty group ends."""
    conn.execute(
        "DELETE FROM group_alerts WHERE rule = ? AND key = ? AND status = 'resolved'", (rule, key)
    )
    left = conn.execute(
        "SELECT COUNT(*) FROM group_alerts WHERE rule = ? AND key = ?", (rule, key)
    ).fetchone()[0]
    if left:
        conn.execute(
            "UPDATE groups SET next_flush = ?, flushed = 1 WHERE rule = ? AND key = ?",
            (now + group_interval, rule, key),
        )
    else:
        conn.execute("DELETE FROM groups WHERE rule = ? AND key = ?", (rule, key))


def drop_group(conn: sqlite3.Connection, rule: str, key: str) -> None:
    conn.execute("DELETE FROM group_alerts WHERE rule = ? AND key = ?", (rule, key))
    conn.execute("DELETE FROM groups WHERE rule = ? AND key = ?", (rule, key))
