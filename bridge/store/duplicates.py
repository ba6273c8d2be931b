"""Notifications taken (table `duplicates`), so a copy of one is known as a duplicate.

Alertmanager's HA peers may each deliver a notification, and Alertmanager given two replicas'
URLs delivers each to both: the pipeline (bridge/pipeline/duplicates.py) says what makes two
copies the same and how long they count as copies; this table remembers each notification's
digest per input until its window ends. The claim is an insert-if-absent in the caller's
transaction, so it commits with what the first copy caused (or, on a 503, not at all: the copy
Alertmanager sends again is taken as the first), and on a shared database two replicas racing
with the same notification cannot both find it new.
"""

from __future__ import annotations

from bridge.store.sqlconn import Connection


class SqlDuplicates:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def claim(self, input_name: str, digest: str, expires: float, now: float) -> bool:
        # Expired rows (of every input) go first, so an old claim of this digest is no claim;
        # the index on `expires` makes this cheap when there are none.
        self._conn.execute("DELETE FROM duplicates WHERE expires <= ?", (now,))
        inserted = self._conn.execute(
            "INSERT INTO duplicates (input, digest, expires) VALUES (?, ?, ?)"
            " ON CONFLICT (input, digest) DO NOTHING",
            (input_name, digest, expires),
        )
        return inserted.rowcount == 1

    def count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM duplicates").fetchone()[0])
