"""The history of sends (store/records.py's Sent): one row per attempt to send a message, with the
bodies posted and DingTalk's answer, kept after the outbox row is gone (for the console's
Messages page: what went out, what DingTalk said).

The sender records an attempt in the transaction that records its outcome (delivery/recording.py),
so the history never says "delivered" of a message the outbox still holds, nor misses one it
deleted. What one row may hold is bounded here (BODY_KEEP bytes of each body, BODIES_KEEP bodies,
ERRMSG_KEEP characters of the error) and the rows by `prune` (the sender calls it now and then,
delivery/recording.py's HISTORY_KEEP), so the table cannot grow without end.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from bridge.store.codec import like_containing
from bridge.store.records import Sent
from bridge.store.sqlconn import Connection

BODY_KEEP = 64 * 1024  # bytes of one body kept (DingTalk's largest body is 20,000 bytes)
BODIES_KEEP = 32  # bodies of one attempt kept (the rest are counted in `parts` only)
ERRMSG_KEEP = 2000  # characters of an error kept
TITLE_KEEP = 1000  # characters of a title kept
RECENT_MAX = 500  # rows one `recent` returns at most
CUT_MARKER = "…[cut: {} more bytes]"

_COLUMNS = (
    "id, target, rule, outcome, at, attempt, parts, errcode, errmsg, reason, title, bodies, covers"
)
# Searched by `recent(text=...)`: everything but the bodies (matched apart, see `_body_pattern`).
_SEARCHED = ("id", "title", "target", "rule", "errmsg")


def bounded_body(body: str, limit: int = BODY_KEEP) -> str:
    """`body`, or its first `limit` bytes (cut at a character) and a marker saying how many more
    there were: a stored body is at most `limit` bytes and the marker."""
    raw = body.encode()
    if len(raw) <= limit:
        return body
    kept = raw[:limit].decode(errors="ignore")
    return kept + CUT_MARKER.format(len(raw) - len(kept.encode()))


def _cut(text: str | None, limit: int) -> str | None:
    return None if text is None else text[:limit]


def _sent(values: Sequence[object]) -> Sent:
    id_, target, rule, outcome, at, attempt, parts, code, msg, reason, title, bodies, covers = (
        values
    )
    return Sent(
        str(id_),
        str(target),
        str(rule),
        str(outcome),
        float(at),  # type: ignore[arg-type]
        int(attempt),  # type: ignore[call-overload]
        int(parts),  # type: ignore[call-overload]
        int(code) if code is not None else None,  # type: ignore[call-overload]
        str(msg) if msg is not None else None,
        str(reason) if reason is not None else None,
        str(title),
        tuple(str(b) for b in json.loads(str(bodies))),
        tuple(str(c) for c in json.loads(str(covers))),
    )


def _body_pattern(text: str) -> str:
    """A LIKE pattern for `text` inside a stored body: the bodies column is a JSON list of the
    bodies' texts, where a body's `"` and `\\` appear escaped once more."""
    return like_containing(json.dumps(text, ensure_ascii=False)[1:-1])


class SqlHistory:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def record(self, sent: Sent) -> None:
        """Keep one attempt (its bodies, error and title bounded)."""
        bodies = [bounded_body(b) for b in sent.bodies[:BODIES_KEEP]]
        self._conn.execute(
            f"INSERT INTO history ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                sent.id,
                sent.target,
                sent.rule,
                sent.outcome,
                sent.at,
                sent.attempt,
                sent.parts,
                sent.errcode,
                _cut(sent.errmsg, ERRMSG_KEEP),
                sent.reason,
                sent.title[:TITLE_KEEP],
                json.dumps(bodies, ensure_ascii=False),
                json.dumps(list(sent.covers), ensure_ascii=False),
            ),
        )

    def recent(
        self,
        *,
        text: str = "",
        target: str | None = None,
        outcome: str | None = None,
        limit: int = 100,
        before: float | None = None,
    ) -> list[Sent]:
        """Newest first, at most `limit` (and RECENT_MAX); `text` matches (ASCII case-insensitive,
        literal) the id, title, target, rule, errmsg or a body; `before` pages back (at <
        before)."""
        where: list[str] = []
        args: list[object] = []
        if text:
            pattern = like_containing(text)
            where.append(
                "("
                + " OR ".join(f"{column} LIKE ? ESCAPE '\\'" for column in _SEARCHED)
                + " OR bodies LIKE ? ESCAPE '\\')"
            )
            args += [pattern] * len(_SEARCHED) + [_body_pattern(text)]
        for column, value in (("target", target), ("outcome", outcome)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if before is not None:
            where.append("at < ?")
            args.append(before)
        condition = f" WHERE {' AND '.join(where)}" if where else ""
        args.append(max(0, min(limit, RECENT_MAX)))
        cursor = self._conn.execute(
            f"SELECT {_COLUMNS} FROM history{condition}"
            " ORDER BY at DESC, id DESC, attempt DESC LIMIT ?",
            args,
        )
        return [_sent(row) for row in cursor.fetchall()]

    def attempts(self, id_: str) -> list[Sent]:
        """Every recorded attempt of message `id_`, or of a digest that carried it, oldest
        first."""
        cursor = self._conn.execute(
            f"SELECT {_COLUMNS} FROM history WHERE id = ? OR covers LIKE ? ESCAPE '\\'"
            " ORDER BY at, attempt, id",
            (id_, like_containing(json.dumps(id_, ensure_ascii=False))),
        )
        return [_sent(row) for row in cursor.fetchall()]

    def prune(self, older_than: float, keep_at_most: int) -> int:
        """Forget attempts that ended before `older_than`, then the oldest beyond the newest
        `keep_at_most` (attempts at the same time as the last one kept go with it, so at most
        that many stay); how many went."""
        gone = self._conn.execute("DELETE FROM history WHERE at < ?", (older_than,)).rowcount
        row = self._conn.execute(
            "SELECT at FROM history ORDER BY at DESC LIMIT 1 OFFSET ?", (max(0, keep_at_most),)
        ).fetchone()
        if row is not None:
            cutoff = float(row[0])
            gone += self._conn.execute("DELETE FROM history WHERE at <= ?", (cutoff,)).rowcount
        return int(gone)
