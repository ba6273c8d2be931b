"""Read views of the state for the decide step (pipeline.decide.StateView).

`StoreView` reads through a store transaction, a read-only one for `render`. `DecidingView`
reads through the daemon's own write transaction, locking each notification-log entry it reads
until the commit: another replica deciding about the same alert group meanwhile waits and then
reads what this one committed, so one notification goes out, not two (on SQLite the write
transaction alone does that). `MemoryView` holds the state as plain values: an empty state, and
tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.alerting.dedup import LogEntry
from bridge.store.api import ReadTx, Tx


class StoreView:
    def __init__(self, tx: ReadTx) -> None:
        self._tx = tx

    def log_entry(self, rule: str, key: str) -> LogEntry | None:
        return self._tx.alertlog.get_entry(rule, key)

    def acknowledged_by(self, fingerprint: str) -> str | None:
        return self._tx.acks.acknowledged_by(fingerprint)

    def group_flush_at(self, rule: str, key: str) -> float | None:
        return self._tx.groups.flush_at(rule, key)


class DecidingView(StoreView):
    def __init__(self, tx: Tx) -> None:
        super().__init__(tx)
        self._writing = tx

    def log_entry(self, rule: str, key: str) -> LogEntry | None:
        return self._writing.alertlog.entry_for_update(rule, key)


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
