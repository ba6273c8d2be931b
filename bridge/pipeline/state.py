"""Read views of the state for the decide step (pipeline.decide.StateView).

`ConnectionView` reads through the store's functions on a connection: the daemon's own write
transaction (so what it reads cannot change before its commit), or a read-only connection for
`render`. `MemoryView` holds the state as plain values: an empty state, and tests.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from bridge.alerting.dedup import LogEntry
from bridge.store import alertlog


class ConnectionView:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def log_entry(self, rule: str, key: str) -> LogEntry | None:
        return alertlog.get_entry(self._conn, rule, key)

    def acknowledged_by(self, fingerprint: str) -> str | None:
        return alertlog.acknowledged_by(self._conn, fingerprint)

    def group_flush_at(self, rule: str, key: str) -> float | None:
        return alertlog.group_flush_at(self._conn, rule, key)


@dataclass
class MemoryView:
    entries: dict[tuple[str, str], LogEntry] = field(default_factory=dict)  # (rule, key)
    acks: dict[str, str] = field(default_factory=dict)  # fingerprint -> by whom
    groups: dict[tuple[str, str], float] = field(default_factory=dict)  # -> next flush

    def log_entry(self, rule: str, key: str) -> LogEntry | None:
        return self.entries.get((rule, key))

    def acknowledged_by(self, fingerprint: str) -> str | None:
        return self.acks.get(fingerprint)

    def group_flush_at(self, rule: str, key: str) -> float | None:
        return self.groups.get((rule, key))
