"""The state store: one SQLite database in the state directory, in WAL mode.

It holds what must survive a restart or `kill -9`: the outbox (messages not yet delivered, and
dead letters), the notification log (what was sent, for dedup and repeat_interval), aggregation
groups, silences added at runtime, and recent send times (so a restart does not forget a robot's
rate window).

WAL with synchronous=NORMAL: a committed transaction survives the process being killed at any
moment (the OS has it); only a power cut can lose the last commits, which `synchronous: full`
in the config closes at the price of an fsync per commit.

One connection, shared under a lock: every statement here is short, and SQLite serialises
writers anyway. The CLI (`outbox`, `silence`) opens its own connection to the same file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bridge.store import ratewindows

SCHEMA_VERSION = 1
DB_NAME = "state.db"
DEFAULT_STATE_DIR = "/var/lib/dingtalk-bridge"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

-- Messages accepted and not yet delivered (status 'pending'), and dead letters ('dead').
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    rule TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    event_status TEXT NOT NULL,
    message TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    created_at REAL NOT NULL,
    not_before REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    parts_sent INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    errcode INTEGER,
    errmsg TEXT,
    updated_at REAL NOT NULL,
    event TEXT  -- the event, while the body is still to be rendered at send time
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (target, status, not_before, created_at);

-- The rate windows and lockouts of each robot: see store/ratewindows.py (robot_calls,
-- robot_lockouts; they replace the per-target tables sends and lockouts).

-- The notification log: per rule and alert group, what was last sent and when.
CREATE TABLE IF NOT EXISTS nflog (
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    firing TEXT NOT NULL,
    resolved TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (rule, key)
) WITHOUT ROWID;  -- small rows looked up by key: one b-tree, half the pages written per update

-- Aggregation groups (rules with group_by) and the alerts they hold until flushed.
CREATE TABLE IF NOT EXISTS groups (
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    labels TEXT NOT NULL,
    created_at REAL NOT NULL,
    next_flush REAL NOT NULL,
    flushed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (rule, key)
);
CREATE TABLE IF NOT EXISTS group_alerts (
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    event TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (rule, key, fingerprint)
);

-- Tailed files: where each file input stopped in each file, by file identity (device and inode,
-- checked against a hash of the file's first bytes). Written in the same transaction as the
-- outbox rows for the lines before `offset`.
CREATE TABLE IF NOT EXISTS tail_files (
    input TEXT NOT NULL,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    path TEXT NOT NULL,
    offset INTEGER NOT NULL,
    fp TEXT NOT NULL,
    fp_len INTEGER NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (input, dev, ino)
) WITHOUT ROWID;
-- When each file input first ran: after that, files without a row are new and read from 0.
CREATE TABLE IF NOT EXISTS tail_inputs (input TEXT PRIMARY KEY, started_at REAL NOT NULL);

-- Alerts acknowledged from the chat (by their notification key): no repeats until resolved.
CREATE TABLE IF NOT EXISTS acks (key TEXT PRIMARY KEY, by TEXT NOT NULL, at REAL NOT NULL);

-- Runtime silences mirrored in Alertmanager (made from the chat): our id -> its id.
CREATE TABLE IF NOT EXISTS am_silences (id TEXT PRIMARY KEY, am_id TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    matchers TEXT NOT NULL,
    starts_at REAL NOT NULL,
    ends_at REAL NOT NULL,
    comment TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at REAL NOT NULL
);

-- Work notices DingTalk took (asyncsend_v2 errcode 0) whose recipients are not known yet; their
-- outbox rows are 'sent'. The notice poller asks getsendresult until it knows (store/notices.py).
CREATE TABLE IF NOT EXISTS notice_tasks (
    target TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    ids TEXT NOT NULL,  -- JSON: the outbox ids the notice carried (several for a digest)
    rules TEXT NOT NULL,  -- JSON: their rules, for the log even if a row is purged meanwhile
    created_at REAL NOT NULL,  -- when the oldest was accepted (for give_up_after)
    sent_at REAL NOT NULL,
    next_poll REAL NOT NULL,
    polls INTEGER NOT NULL DEFAULT 0,
    last_answer TEXT,  -- the previous answer (JSON), to see when it stops changing
    PRIMARY KEY (target, task_id)
);
CREATE INDEX IF NOT EXISTS notice_tasks_due ON notice_tasks (next_poll);

-- Who received each work notice and who did not, and why (kept for a week, for `outbox show`).
CREATE TABLE IF NOT EXISTS notice_results (
    id TEXT NOT NULL,  -- the outbox id
    task_id INTEGER NOT NULL,
    target TEXT NOT NULL,
    rule TEXT NOT NULL,
    outcome TEXT NOT NULL,  -- delivered | partial | dead | retry | unverified
    received TEXT NOT NULL,  -- JSON list of user ids
    refused TEXT NOT NULL,  -- JSON list of [user id, code]
    note TEXT,
    at REAL NOT NULL,
    PRIMARY KEY (id, task_id)
);
CREATE INDEX IF NOT EXISTS notice_results_at ON notice_results (at);

-- Signed requests already taken (callback nonces, chat timestamp+sign pairs), each until its
-- timestamp leaves the input's window: a replay is refused after a restart as before it.
CREATE TABLE IF NOT EXISTS replays (
    input TEXT NOT NULL,
    key TEXT NOT NULL,
    digest TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (input, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS replays_expires ON replays (expires);
"""


def state_dir_from_env(configured: str | None) -> Path:
    """The configured state_dir, else systemd's $STATE_DIRECTORY, else the packaged default."""
    if configured:
        return Path(configured)
    from_systemd = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(from_systemd or DEFAULT_STATE_DIR)


class Store:
    def __init__(self, directory: Path, synchronous: str = "normal", busy_timeout: float = 5.0):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / DB_NAME
        self._conn = sqlite3.connect(
            self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        self._lock = threading.RLock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # Checkpoint less often: the hot pages (the ends of the outbox and its indexes) are
            # rewritten by every commit, and each checkpoint copies each page once.
            self._conn.execute("PRAGMA wal_autocheckpoint=10000")
            self._conn.execute(
                f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}"
            )
            self._conn.executescript(_SCHEMA + ratewindows.SCHEMA)
            self._conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE): committed on exit, rolled back on error."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads (each statement sees committed data)."""
        with self._lock:
            yield self._conn

    def writable(self) -> bool:
        """Can we commit right now? (for /-/ready)"""
        try:
            with self.transaction() as conn:
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', '1')")
        except sqlite3.Error:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            self._conn.close()
