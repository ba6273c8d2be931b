"""Tail positions of file inputs in the state store (tables `tail_files`, `tail_inputs`).

A row says: on node `node`, in the file with this (device, inode) whose first `fp_len` bytes hash
to `fp`, every line before `offset` has been handed on (its events are in the outbox, committed in
the same transaction as this row). The hash guards against inode reuse: a new file that got a
deleted file's inode does not inherit its offset.

Every row belongs to a node (`state: {node_id}`, by default the host name): replicas sharing one
database each tail their own files, which may have the same input name, path and even the same
(device, inode) as another host's, so neither offsets nor the "first run" memory may be shared.
Rows written before node ids existed have node '' (schema step "tail offsets by node"); the first
node to start that input after the upgrade adopts them (`first_run`), so a single-host install
keeps reading where it stopped.

The file input does not call these itself: `StoreOffsets` (store/offsets.py) answers its
`Offsets` protocol, and the composition root calls `record` inside the transaction that commits
the events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bridge.model import FileKey, Position
from bridge.store.sqlconn import Connection

# The node of rows written before node ids existed (a real node id is never empty).
UNADOPTED = ""


class SqlTailState:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def load(self, node: str, input_name: str) -> dict[FileKey, Position]:
        rows = self._conn.execute(
            'SELECT dev, ino, path, "offset", fp, fp_len FROM tail_files'
            " WHERE node = ? AND input = ?",
            (node, input_name),
        )
        return {
            (dev, ino): Position(path, off, fp, fp_len) for dev, ino, path, off, fp, fp_len in rows
        }

    def save(
        self, node: str, input_name: str, positions: Mapping[FileKey, Position], now: float
    ) -> None:
        self._conn.executemany(
            'INSERT INTO tail_files (node, input, dev, ino, path, "offset", fp, fp_len, seen_at)'
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (node, input, dev, ino) DO UPDATE SET"
            ' path = excluded.path, "offset" = excluded."offset", fp = excluded.fp,'
            " fp_len = excluded.fp_len, seen_at = excluded.seen_at",
            [
                (node, input_name, dev, ino, p.path, p.offset, p.fp, p.fp_len, now)
                for (dev, ino), p in positions.items()
            ],
        )

    def forget(self, node: str, input_name: str, keys: Iterable[FileKey]) -> None:
        self._conn.executemany(
            "DELETE FROM tail_files WHERE node = ? AND input = ? AND dev = ? AND ino = ?",
            [(node, input_name, dev, ino) for dev, ino in keys],
        )

    def prune(self, node: str, input_name: str, keep: Iterable[FileKey], before: float) -> int:
        """Drop rows of files not seen since `before` (and not in `keep`): gone files' positions."""
        kept = set(keep)
        stale = [
            (dev, ino)
            for dev, ino in self._conn.execute(
                "SELECT dev, ino FROM tail_files WHERE node = ? AND input = ? AND seen_at < ?",
                (node, input_name, before),
            )
            if (dev, ino) not in kept
        ]
        self.forget(node, input_name, stale)
        return len(stale)

    def first_run(self, node: str, input_name: str, now: float) -> bool:
        """True the first time an input runs on `node` (then `read_from` applies to the files
        there). Rows of this input from before node ids become `node`'s first: a node that finds
        them is the one that ran the input until the upgrade (the first to start after it), and
        it resumes them. On a shared database a second node's UPDATE waits for the first's
        transaction and then finds nothing left to adopt."""
        for table in ("tail_files", "tail_inputs"):
            self._conn.execute(
                f"UPDATE {table} SET node = ? WHERE node = ? AND input = ?",
                (node, UNADOPTED, input_name),
            )
        cursor = self._conn.execute(
            "INSERT INTO tail_inputs (node, input, started_at) VALUES (?, ?, ?)"
            " ON CONFLICT (node, input) DO NOTHING",
            (node, input_name, now),
        )
        return cursor.rowcount == 1

    def record(
        self,
        node: str,
        input_name: str,
        positions: Mapping[FileKey, Position],
        gone: Iterable[FileKey],
        now: float,
    ) -> None:
        """Save the positions a file input reached and forget its deleted files (in the caller's
        transaction, the one that commits the events of the lines before those positions)."""
        self.save(node, input_name, positions, now)
        self.forget(node, input_name, gone)
