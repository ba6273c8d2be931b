"""Silences added at runtime (`dingtalk-bridge silence add`), kept in the state store.

Every process using the state (replicas, the CLI) may add or expire one; each change writes a
new `silences_version` in `meta`, in the same transaction, so a running bridge learns that its
copy is stale by reading one row (`version`) instead of every silence.
"""

from __future__ import annotations

import json
import logging
import math
import uuid

from bridge.alerting import matchers
from bridge.alerting.silences import Silence
from bridge.store.sqlconn import Connection

log = logging.getLogger(__name__)

VERSION_KEY = "silences_version"


def _row(r: tuple[object, ...]) -> Silence:
    starts, ends = r[2], r[3]
    if not isinstance(starts, int | float) or not isinstance(ends, int | float):
        raise TypeError("starts_at/ends_at are not numbers")
    if math.isnan(starts) or math.isnan(ends):
        raise ValueError("starts_at/ends_at are not numbers")
    texts = json.loads(str(r[1]))
    if not isinstance(texts, list):
        raise TypeError("matchers is not a list")
    parsed = tuple(matchers.parse(str(t)) for t in texts)
    return Silence(
        str(r[0]),
        parsed,
        float(starts),
        float(ends),
        str(r[4] or ""),
        str(r[5] or ""),
        expired_by=str(r[6] or ""),
    )


class SqlSilences:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(
        self,
        parsed: tuple[matchers.Matcher, ...],
        starts_at: float,
        ends_at: float,
        comment: str,
        author: str,
        now: float,
    ) -> Silence:
        silence = Silence(uuid.uuid4().hex[:12], parsed, starts_at, ends_at, comment, author)
        self._changed()
        self._conn.execute(
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

    def load(self, ended_after: float | None = None) -> list[Silence]:
        """Runtime silences ending after `ended_after` (all of them when None)."""
        since = ended_after if ended_after is not None else float("-inf")
        rows = self._conn.execute(
            "SELECT id, matchers, starts_at, ends_at, comment, author, expired_by FROM silences"
            " WHERE ends_at > ? ORDER BY starts_at, id",
            (since,),
        ).fetchall()
        out = []
        for r in rows:
            try:
                out.append(_row(r))
            except (ValueError, TypeError, OverflowError) as exc:
                # A row this version would not store (written by hand, by an older version before
                # durations were bounded): skipped and said, so listings and matching still work.
                log.warning(f"silence {str(r[0])[:40]!r} skipped: unreadable row ({exc})")
        return out

    def expire(self, id_prefix: str, now: float, by: str = "") -> list[str]:
        """End the matching active silence now (recording who); the ids that matched."""
        rows = self._conn.execute(
            "SELECT id FROM silences WHERE id LIKE ? AND ends_at > ?",
            (id_prefix.replace("%", "") + "%", now),
        ).fetchall()
        ids = [r[0] for r in rows]
        if len(ids) == 1:
            self._conn.execute(
                "UPDATE silences SET ends_at = ?, expired_by = ? WHERE id = ?", (now, by, ids[0])
            )
            self._changed()
        return ids

    def version(self) -> str:
        """Changes whenever a silence is added or expired, by any process ('' before any)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (VERSION_KEY,)).fetchone()
        return str(row[0]) if row else ""

    def _changed(self) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (VERSION_KEY, uuid.uuid4().hex),
        )

    def link(self, silence_id: str, am_id: str) -> None:
        """Remember that `silence_id` also exists in Alertmanager as `am_id`."""
        self._conn.execute(
            "INSERT INTO am_silences (id, am_id) VALUES (?, ?)"
            " ON CONFLICT (id) DO UPDATE SET am_id = excluded.am_id",
            (silence_id, am_id),
        )

    def linked(self, silence_id: str) -> str | None:
        row = self._conn.execute(
            "SELECT am_id FROM am_silences WHERE id = ?", (silence_id,)
        ).fetchone()
        return str(row[0]) if row else None
