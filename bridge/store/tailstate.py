"""Tail positions of file inputs in the state store (table `tail_files`).

A row says: in the file with this (device, inode) whose first `fp_len` bytes hash to `fp`, every
line before `offset` has been handed on (its events are in the outbox, committed in the same
transaction as this row). The hash guards against inode reuse: a new file that got a deleted
file's inode does not inherit its offset.

The file input does not call these itself: `StoreOffsets` (store/offsets.py) answers its
`Offsets` protocol, and the composition root calls `record` inside the transaction that commits
the events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bridge.model import FileKey, Position
from bridge.store.sqlconn import Connection


class SqlTailState:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def load(self, input_name: str) -> dict[FileKey, Position]:
        rows = self._conn.execute(
            'SELECT dev, ino, path, "offset", fp, fp_len FROM tail_files WHERE input = ?',
            (input_name,),
        )
        return {
            (dev, ino): Position(path, off, fp, fp_len) for dev, ino, path, off, fp, fp_len in rows
        }

    def save(self, input_name: str, positions: Mapping[FileKey, Position], now: float) -> None:
        self._conn.executemany(
            'INSERT INTO tail_files (input, dev, ino, path, "offset", fp, fp_len, seen_at)'
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (input, dev, ino) DO UPDATE SET"
            ' path = excluded.path, "offset" = excluded."offset", fp = excluded.fp,'
            " fp_len = excluded.fp_len, seen_at = excluded.seen_at",
            [
                (input_name, dev, ino, p.path, p.offset, p.fp, p.fp_len, now)
                for (dev, ino), p in positions.items()
            ],
        )

    def forget(self, input_name: str, keys: Iterable[FileKey]) -> None:
        self._conn.executemany(
            "DELETE FROM tail_files WHERE input = ? AND dev = ? AND ino = ?",
            [(input_name, dev, ino) for dev, ino in keys],
        )

    def prune(self, input_name: str, keep: Iterable[FileKey], before: float) -> int:
        """Drop rows of files not seen since `before` (and not in `keep`): gone files' positions."""
        kept = set(keep)
        stale = [
            (dev, ino)
            for dev, ino in self._conn.execute(
                "SELECT dev, ino FROM tail_files WHERE input = ? AND seen_at < ?",
                (input_name, before),
            )
            if (dev, ino) not in kept
        ]
        self.forget(input_name, stale)
        return len(stale)

    def first_run(self, input_name: str, now: float) -> bool:
        """True the first time an input runs (then `read_from` applies to the files there)."""
        cursor = self._conn.execute(
            "INSERT INTO tail_inputs (input, started_at) VALUES (?, ?)"
            " ON CONFLICT (input) DO NOTHING",
            (input_name, now),
        )
        return cursor.rowcount == 1

    def record(
        self,
        input_name: str,
        positions: Mapping[FileKey, Position],
        gone: Iterable[FileKey],
        now: float,
    ) -> None:
        """Save the positions a file input reached and forget its deleted files (in the caller's
        transaction, the one that commits the events of the lines before those positions)."""
        self.save(input_name, positions, now)
        self.forget(input_name, gone)
