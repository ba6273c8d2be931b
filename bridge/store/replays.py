"""Signed requests already taken (table `replays`): DingTalk callbacks and chat commands.

DingTalk signs a callback over (timestamp, nonce, ciphertext) and a chat request over its
timestamp only, so a captured request stays valid for the input's whole window. Each authentic
request is remembered here by its key (the callback's nonce and timestamp, the chat request's
timestamp and sign) with a digest of what it carried, until its timestamp leaves the window:
then it is refused as stale anyway, and the row is pruned. Kept in the store, not in memory, so
a restart does not open the door to a request refused just before it.

Only requests whose signature was verified get here: the table grows with DingTalk's real
traffic within one window, never with what an attacker sends.
"""

from __future__ import annotations

from bridge.store.records import Seen
from bridge.store.sqlconn import Connection


class SqlReplays:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def claim(self, input_name: str, key: str, digest: str, expires: float, now: float) -> Seen:
        """Remember (input, key) until `expires`, unless it is remembered already; in the caller's
        transaction, so the row commits with what the request caused (or not at all)."""
        self._conn.execute(
            "DELETE FROM replays WHERE expires < ?", (now,)
        )  # indexed: cheap when none
        row = self._conn.execute(
            "SELECT digest FROM replays WHERE input = ? AND key = ?", (input_name, key)
        ).fetchone()
        if row is not None:
            return Seen.SAME if row[0] == digest else Seen.OTHER
        self._conn.execute(
            "INSERT INTO replays (input, key, digest, expires) VALUES (?, ?, ?, ?)",
            (input_name, key, digest, expires),
        )
        return Seen.NEW

    def taken(self, input_name: str, key: str, now: float) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM replays WHERE input = ? AND key = ? AND expires >= ?",
            (input_name, key, now),
        ).fetchone()
        return row is not None

    def count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM replays").fetchone()[0])
