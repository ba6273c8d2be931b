"""Keys the bridge makes for itself and keeps in `meta` (key `key:<name>`): today the one that
signs the one-tap action links when the config gives none (bridge/alerting/actions.py).

Kept in the state store, not in the state directory or memory, because every process that
serves the links must agree on it: a restarted bridge still accepts the links it sent, and the
replicas sharing a PostgreSQL database accept each other's. The first process to need it makes
it; `INSERT ... ON CONFLICT DO NOTHING` then a read means two processes making it at once both
end up with the one that was written first. `state migrate` copies `meta`, so the links sent
before a move to PostgreSQL stay valid after it.
"""

from __future__ import annotations

from bridge.store.sqlconn import Connection


class SqlKeys:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get_or_make(self, name: str, fresh: str) -> str:
        """The key `name`, stored as `fresh` if there is none yet."""
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (f"key:{name}", fresh),
        )
        row = self._conn.execute(
            "SELECT value FROM meta WHERE key = ?", (f"key:{name}",)
        ).fetchone()
        return str(row[0])
