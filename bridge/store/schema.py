"""The SQLite state store's tables, and its schema versions (store/migrations.py).

Version 1 is every table up to issue 13 (each later step says what it adds). Databases from
before the version bookkeeping hold version 1 with some of those tables missing (they were added
over time), so version 1's statements (all `IF NOT EXISTS`) run at every open, as they always
did; later steps run once, each with its version row in one transaction. bridge/store/db.py
calls `migrate` on opening, and the modules beside it (outbox.py, alertlog.py, ...) are the
tables' only readers and writers.
"""

from __future__ import annotations

import sqlite3

from bridge.store.migrations import VERSION_KEY, Step, latest, pending

SCHEMA = """
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
-- (Its index by due time, outbox_due, was replaced by outbox_queue in version 11.)

-- The rate windows and lockouts of each robot: robot_calls and robot_lockouts, at the end (they
-- replace the per-target tables sends and lockouts; see store/ratewindows.py).

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
-- outbox rows for the lines before `offset`. Version 1's shape: TAIL_BY_NODE (below) keys both
-- tail tables by node as well.
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

-- Alertmanager notifications taken, by a digest of what makes one (store/duplicates.py), each
-- until its input's dedup_window ends: a copy from another peer before then is a duplicate.
CREATE TABLE IF NOT EXISTS duplicates (
    input TEXT NOT NULL,
    digest TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (input, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS duplicates_expires ON duplicates (expires);

-- When each robot (or app) last counted one of our calls: the rate window, across restarts.
CREATE TABLE IF NOT EXISTS robot_calls (robot TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS robot_calls_robot ON robot_calls (robot, at);
-- Until when DingTalk locked each robot (130101) or app (143103) out.
CREATE TABLE IF NOT EXISTS robot_lockouts (robot TEXT PRIMARY KEY, until REAL NOT NULL);
"""

# Tail offsets by node (issue 13): replicas sharing a database each tail their own files, so
# tail_files and tail_inputs are keyed by the node id too. SQLite cannot change a primary key in
# place: each table is rebuilt, its rows kept with node '' (adopted by the first node that starts
# the input: store/tailstate.py). Touches only these two tables, so it runs after any other step.
TAIL_BY_NODE = """
CREATE TABLE tail_files_by_node (
    node TEXT NOT NULL,
    input TEXT NOT NULL,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    path TEXT NOT NULL,
    offset INTEGER NOT NULL,
    fp TEXT NOT NULL,
    fp_len INTEGER NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (node, input, dev, ino)
) WITHOUT ROWID;
INSERT INTO tail_files_by_node (node, input, dev, ino, path, offset, fp, fp_len, seen_at)
    SELECT '', input, dev, ino, path, offset, fp, fp_len, seen_at FROM tail_files;
DROP TABLE tail_files;
ALTER TABLE tail_files_by_node RENAME TO tail_files;
CREATE TABLE tail_inputs_by_node (
    node TEXT NOT NULL,
    input TEXT NOT NULL,
    started_at REAL NOT NULL,
    PRIMARY KEY (node, input)
);
INSERT INTO tail_inputs_by_node (node, input, started_at)
    SELECT '', input, started_at FROM tail_inputs;
DROP TABLE tail_inputs;
ALTER TABLE tail_inputs_by_node RENAME TO tail_inputs
"""

# Version 3: claims. A replica (or a process of one host) sending a row or polling a task holds
# it until `claimed_until` (store/claims.py says why a lease, and what checks the owner).
CLAIMS = """
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until REAL;
ALTER TABLE notice_tasks ADD COLUMN claimed_by TEXT;
ALTER TABLE notice_tasks ADD COLUMN claimed_until REAL
"""

# Version 4 (issue 13, replicas sharing a robot's window): a call in flight is a reservation row,
# named so that its outcome replaces it (store/ratewindows.py).
_ROBOT_RESERVATIONS = "ALTER TABLE robot_calls ADD COLUMN reservation TEXT"

# Version 5 (issue 14): alerts posted to `prometheus` inputs, kept as Alertmanager keeps them
# (store/alertstate.py). `resolved` and `timeout` are 0 or 1.
POSTED_ALERTS = """
CREATE TABLE IF NOT EXISTS posted_alerts (
    input TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    starts_at REAL NOT NULL,
    ends_at REAL NOT NULL,
    generator_url TEXT NOT NULL,
    resolved INTEGER NOT NULL,
    timeout INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (input, fingerprint)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS posted_alerts_expiry ON posted_alerts (input, resolved, ends_at)
"""

# Version 6 (issue 15): the app robot's sends DingTalk took, with the processQueryKey a recall
# needs and the users it refused (store/appsends.py).
APP_ROBOT_SENDS = """
CREATE TABLE IF NOT EXISTS app_robot_sends (
    id TEXT NOT NULL,  -- the outbox id
    process_query_key TEXT NOT NULL,
    target TEXT NOT NULL,
    rule TEXT NOT NULL,
    robot_code TEXT NOT NULL,
    conversation TEXT,  -- openConversationId; NULL: one-to-one
    users TEXT NOT NULL,  -- JSON list: the users of a one-to-one call
    refused TEXT NOT NULL,  -- JSON list of [user id, why]
    sent_at REAL NOT NULL,
    recalled_at REAL,
    recall_note TEXT,
    PRIMARY KEY (id, process_query_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS app_robot_sends_key ON app_robot_sends (process_query_key);
CREATE INDEX IF NOT EXISTS app_robot_sends_sent ON app_robot_sends (sent_at)
"""

# Interactive cards DingTalk delivered: what a click leads back to, what an ack or a resolution
# updates (store/cards.py).
CARDS = """
CREATE TABLE IF NOT EXISTS cards (
    out_track_id TEXT PRIMARY KEY,
    id TEXT NOT NULL,  -- the outbox id of the message it carried
    target TEXT NOT NULL,
    rule TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    labels TEXT NOT NULL,  -- JSON object: the labels its message showed
    sent_at REAL NOT NULL,
    settled_at REAL  -- told its alert resolved
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cards_alert ON cards (fingerprint);
CREATE INDEX IF NOT EXISTS cards_sent ON cards (sent_at)
"""

# Version 8 (issue 16): escalations, one row per alert of a rule with `escalate` from its first
# firing on (store/escalations.py). `stopped`: NULL while running, 'ack' or 'resolve'.
ESCALATIONS = """
CREATE TABLE IF NOT EXISTS escalations (
    rule TEXT NOT NULL,
    key TEXT NOT NULL,  -- the notification log's key of the alert (or group)
    fingerprint TEXT NOT NULL,  -- what acks take
    labels TEXT NOT NULL,  -- JSON object: what silences match
    started_at REAL NOT NULL,
    steps_done INTEGER NOT NULL,
    stopped TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (rule, key)
) WITHOUT ROWID
"""

# Version 9 (issue 17): the history of sends, one row per attempt with the bodies posted and
# DingTalk's answer (store/history.py), for the console's Messages page. No primary key: an id
# may be recorded twice at one time (an outcome held, then recorded); rows are read by id or by
# time, and pruned by time and count.
HISTORY = """
CREATE TABLE IF NOT EXISTS history (
    id TEXT NOT NULL,  -- the outbox id (a digest's: "first+N")
    target TEXT NOT NULL,
    rule TEXT NOT NULL,
    outcome TEXT NOT NULL,  -- delivered | accepted | retrying | dead
    at REAL NOT NULL,
    attempt INTEGER NOT NULL,
    parts INTEGER NOT NULL,
    errcode INTEGER,
    errmsg TEXT,
    reason TEXT,
    title TEXT NOT NULL,
    bodies TEXT NOT NULL,  -- JSON list of the JSON texts posted
    covers TEXT NOT NULL  -- JSON list: a digest's outbox ids ([] otherwise)
);
CREATE INDEX IF NOT EXISTS history_at ON history (at);
CREATE INDEX IF NOT EXISTS history_id ON history (id)
"""

# Version 10 (issue 17): who ended a silence (the console shows who did what and when).
SILENCE_EXPIRY = "ALTER TABLE silences ADD COLUMN expired_by TEXT"

# Version 11: a target's queue in the order it is sent. A sender claims the oldest due rows
# (ORDER BY created_at, id LIMIT n); by due time (outbox_due: target, status, not_before, ...)
# every due row was read and sorted to find them, inside the claim's write transaction: 30 ms
# at a backlog of 20,000, during which no request of any worker could commit. In queue order
# the claim reads the rows it takes (not_before in the index skips those not due yet without
# reading them); the earliest not_before of a target is a scan of its entries in the index.
# claimed_until is there for /-/ready's count of rows being sent (OutboxReads.claimed), which
# otherwise read every row of the table: 144 ms at a backlog of 100,000, the store locked.
OUTBOX_QUEUE = """
DROP INDEX IF EXISTS outbox_due;
CREATE INDEX IF NOT EXISTS outbox_queue
    ON outbox (target, status, created_at, id, not_before, claimed_until)
"""

STEPS: tuple[Step, ...] = (
    Step(1, SCHEMA),
    Step(2, TAIL_BY_NODE),
    Step(3, CLAIMS),
    Step(4, _ROBOT_RESERVATIONS),
    Step(5, POSTED_ALERTS),
    Step(6, APP_ROBOT_SENDS),
    Step(7, CARDS),
    Step(8, ESCALATIONS),
    Step(9, HISTORY),
    Step(10, SILENCE_EXPIRY),
    Step(11, OUTBOX_QUEUE),
)
SCHEMA_VERSION = latest(STEPS)


def schema_version(conn: sqlite3.Connection) -> int | None:
    """The version recorded in the database (None: none recorded, or no database yet)."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (VERSION_KEY,)).fetchone()
    except sqlite3.OperationalError:  # no meta table: a new (empty) database
        return None
    return int(row[0]) if row else None


def migrate(conn: sqlite3.Connection, where: str) -> None:
    """Bring the database to this code's schema; StateError for one newer than the code.

    Writes only what is missing: a write on every start would fail on a full disk, where the
    bridge must still start (and answer 503 until there is room)."""
    current = schema_version(conn)
    todo = pending(current, STEPS, where)
    conn.executescript(SCHEMA)  # version 1, idempotent (see the docstring)
    if current is None:
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
            (VERSION_KEY, str(STEPS[0].version)),
        )
    for step in todo:
        if step.version == 1:
            continue
        conn.executescript(
            f"BEGIN IMMEDIATE; {step.script}; INSERT OR REPLACE INTO meta (key, value)"
            f" VALUES ('{VERSION_KEY}', '{step.version}'); COMMIT;"
        )
