"""Silences added at runtime (`dingtalk-bridge silence add`), kept in the state store."""

from __future__ import annotations

import json
import sqlite3
import uuid

from bridge import matchers
from bridge.alerting.silences import Silence


def add(
    conn: sqlite3.Connection,
    parsed: tuple[matchers.Matcher, ...],
    starts_at: float,
    ends_at: float,
    comment: str,
    author: str,
    now: float,
) -> Silence:
    silence = Silence(uuid.uuid4().hex[:12], parsed, starts_at, ends_at, comment, author)
    conn.execute(
        "INSERT INTO silences (id, matchers, starts_at, ends_at, comment, author, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            silence.id,
            json.dumps([str(m) for m in parsed]),
            starts_at,
            ends_at,
            comment,
            author,
            now,
        ),
    )
    return silence


def load(conn: sqlite3.Connection, ended_after: float | None = None) -> list[Silence]:
    """Runtime silences ending after `ended_after` (all of them when None)."""
    since = ended_after if ended_after is not None else float("-inf")
    rows = conn.execute(
        "SELECT id, matchers, starts_at, ends_at, comment, author FROM silences"
        " WHERE ends_at > ? ORDER BY starts_at, id",
        (since,),
    ).fetchall()
    return [
        Silence(r[0], tuple(matchers.parse(t) for t in json.loads(r[1])), r[2], r[3], r[4], r[5])
        for r in rows
    ]


def expire(conn: sqlite3.Connection, id_prefix: str, now: float) -> list[str]:
    """End the matching active silences now; returns their ids."""
    rows = conn.execute(
        "SELECT id FROM silences WHERE id LIKE ? AND ends_at > ?",
        (id_prefix.replace("%", "") + "%", now),
    ).fetchall()
    ids = [r[0] for r in rows]
    if len(ids) == 1:
        conn.execute("UPDATE silences SET ends_at = ? WHERE id = ?", (now, ids[0]))
    return ids


def link(conn: sqlite3.Connection, silence_id: str, am_id: str) -> None:
    """Remember that `silence_id` also exists in Alertmanager as `am_id`."""
    conn.execute(
        "INSERT OR REPLACE INTO am_silences (id, am_id) VALUES (?, ?)", (silence_id, am_id)
    )


def linked(conn: sqlite3.Connection, silence_id: str) -> str | None:
    row = conn.execute("SELECT am_id FROM am_silences WHERE id = ?", (silence_id,)).fetchone()
    return str(row[0]) if row else None
