"""The PostgreSQL state store's tables, as migration steps (store/migrations.py).

The same tables and columns as SQLite's (store/schema.py), so the statements of the table-family
modules run on both: times are seconds since the epoch (DOUBLE PRECISION, as SQLite's REAL),
JSON is kept as text (written and read by the same code as on SQLite), ids and keys compare
byte-wise (COLLATE "C", as SQLite's BINARY), so orderings match between backends. Reserved
words among the column names ("offset", "by") are quoted in every statement.
"""

from bridge.store.migrations import Step
from bridge.store.schema import OUTBOX_QUEUE  # the same statements on both backends

# Taken (as a transaction-scoped advisory lock) while the schema is checked and migrated, so two
# replicas starting together do not both create it.
MIGRATION_LOCK = 0x62726964  # "brid"

_VERSION_1 = """
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT COLLATE "C" PRIMARY KEY,
    target TEXT COLLATE "C" NOT NULL,
    rule TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    event_status TEXT NOT NULL,
    message TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    created_at DOUBLE PRECISION NOT NULL,
    not_before DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    parts_sent INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    errcode BIGINT,
    errmsg TEXT,
    updated_at DOUBLE PRECISION NOT NULL,
    event TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (target, status, not_before, created_at);

CREATE TABLE IF NOT EXISTS nflog (
    rule TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    firing TEXT NOT NULL,
    resolved TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (rule, key)
);

CREATE TABLE IF NOT EXISTS groups (
    rule TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    labels TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    next_flush DOUBLE PRECISION NOT NULL,
    flushed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (rule, key)
);
CREATE TABLE IF NOT EXISTS group_alerts (
    rule TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    fingerprint TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL,
    event TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (rule, key, fingerprint)
);

CREATE TABLE IF NOT EXISTS tail_files (
    input TEXT NOT NULL,
    dev BIGINT NOT NULL,
    ino BIGINT NOT NULL,
    path TEXT NOT NULL,
    "offset" BIGINT NOT NULL,
    fp TEXT NOT NULL,
    fp_len BIGINT NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (input, dev, ino)
);
CREATE TABLE IF NOT EXISTS tail_inputs (
    input TEXT PRIMARY KEY,
    started_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE IF NOT EXISTS acks (
    key TEXT COLLATE "C" PRIMARY KEY,
    "by" TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);

CREATE TABLE IF NOT EXISTS am_silences (id TEXT COLLATE "C" PRIMARY KEY, am_id TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS silences (
    id TEXT COLLATE "C" PRIMARY KEY,
    matchers TEXT NOT NULL,
    starts_at DOUBLE PRECISION NOT NULL,
    ends_at DOUBLE PRECISION NOT NULL,
    comment TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE IF NOT EXISTS notice_tasks (
    target TEXT COLLATE "C" NOT NULL,
    task_id BIGINT NOT NULL,
    ids TEXT NOT NULL,
    rules TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    sent_at DOUBLE PRECISION NOT NULL,
    next_poll DOUBLE PRECISION NOT NULL,
    polls INTEGER NOT NULL DEFAULT 0,
    last_answer TEXT,
    PRIMARY KEY (target, task_id)
);
CREATE INDEX IF NOT EXISTS notice_tasks_due ON notice_tasks (next_poll);

CREATE TABLE IF NOT EXISTS notice_results (
    id TEXT COLLATE "C" NOT NULL,
    task_id BIGINT NOT NULL,
    target TEXT NOT NULL,
    rule TEXT NOT NULL,
    outcome TEXT NOT NULL,
    received TEXT NOT NULL,
    refused TEXT NOT NULL,
    note TEXT,
    at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (id, task_id)
);
CREATE INDEX IF NOT EXISTS notice_results_at ON notice_results (at);

CREATE TABLE IF NOT EXISTS replays (
    input TEXT NOT NULL,
    key TEXT NOT NULL,
    digest TEXT NOT NULL,
    expires DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (input, key)
);
CREATE INDEX IF NOT EXISTS replays_expires ON replays (expires);

CREATE TABLE IF NOT EXISTS duplicates (
    input TEXT NOT NULL,
    digest TEXT NOT NULL,
    expires DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (input, digest)
);
CREATE INDEX IF NOT EXISTS duplicates_expires ON duplicates (expires);

CREATE TABLE IF NOT EXISTS robot_calls (robot TEXT NOT NULL, at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS robot_calls_robot ON robot_calls (robot, at);
CREATE TABLE IF NOT EXISTS robot_lockouts (
    robot TEXT PRIMARY KEY,
    until DOUBLE PRECISION NOT NULL
);
"""

# Tail offsets by node (issue 13; store/schema.py's TAIL_BY_NODE for SQLite): both tail tables
# keyed by the node id too. Rows from before get node '' (adopted by the first node that starts
# the input: store/tailstate.py); the default is dropped at once, so no statement can leave the
# node out by mistake. Touches only these two tables, so it runs after any other step.
_TAIL_BY_NODE = """
ALTER TABLE tail_files ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE tail_files ALTER COLUMN node DROP DEFAULT;
ALTER TABLE tail_files DROP CONSTRAINT tail_files_pkey;
ALTER TABLE tail_files ADD PRIMARY KEY (node, input, dev, ino);
ALTER TABLE tail_inputs ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE tail_inputs ALTER COLUMN node DROP DEFAULT;
ALTER TABLE tail_inputs DROP CONSTRAINT tail_inputs_pkey;
ALTER TABLE tail_inputs ADD PRIMARY KEY (node, input);
"""

# Claims (store/claims.py): who sends a row or polls a task now, and until when.
_CLAIMS = """
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS claimed_by TEXT COLLATE "C",
    ADD COLUMN IF NOT EXISTS claimed_until DOUBLE PRECISION;
ALTER TABLE notice_tasks ADD COLUMN IF NOT EXISTS claimed_by TEXT COLLATE "C",
    ADD COLUMN IF NOT EXISTS claimed_until DOUBLE PRECISION;
"""

# A call in flight is a reservation row, named so that its outcome replaces it (see
# store/ratewindows.py: replicas share a robot's window).
_ROBOT_RESERVATIONS = "ALTER TABLE robot_calls ADD COLUMN IF NOT EXISTS reservation TEXT;"

# Alerts posted to `prometheus` inputs (store/alertstate.py; store/schema.py's POSTED_ALERTS).
_POSTED_ALERTS = """
CREATE TABLE IF NOT EXISTS posted_alerts (
    input TEXT COLLATE "C" NOT NULL,
    fingerprint TEXT COLLATE "C" NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    starts_at DOUBLE PRECISION NOT NULL,
    ends_at DOUBLE PRECISION NOT NULL,
    generator_url TEXT NOT NULL,
    resolved INTEGER NOT NULL,
    timeout INTEGER NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (input, fingerprint)
);
CREATE INDEX IF NOT EXISTS posted_alerts_expiry ON posted_alerts (input, resolved, ends_at);
"""

# The app robot's sends DingTalk took (store/appsends.py; store/schema.py's APP_ROBOT_SENDS).
_APP_ROBOT_SENDS = """
CREATE TABLE IF NOT EXISTS app_robot_sends (
    id TEXT COLLATE "C" NOT NULL,
    process_query_key TEXT COLLATE "C" NOT NULL,
    target TEXT NOT NULL,
    rule TEXT NOT NULL,
    robot_code TEXT NOT NULL,
    conversation TEXT,
    users TEXT NOT NULL,
    refused TEXT NOT NULL,
    sent_at DOUBLE PRECISION NOT NULL,
    recalled_at DOUBLE PRECISION,
    recall_note TEXT,
    PRIMARY KEY (id, process_query_key)
);
CREATE INDEX IF NOT EXISTS app_robot_sends_key ON app_robot_sends (process_query_key);
CREATE INDEX IF NOT EXISTS app_robot_sends_sent ON app_robot_sends (sent_at);
"""

# Interactive cards DingTalk delivered (store/cards.py; store/schema.py's CARDS).
_CARDS = """
CREATE TABLE IF NOT EXISTS cards (
    out_track_id TEXT COLLATE "C" PRIMARY KEY,
    id TEXT COLLATE "C" NOT NULL,
    target TEXT NOT NULL,
    rule TEXT NOT NULL,
    fingerprint TEXT COLLATE "C" NOT NULL,
    labels TEXT NOT NULL,
    sent_at DOUBLE PRECISION NOT NULL,
    settled_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS cards_alert ON cards (fingerprint);
CREATE INDEX IF NOT EXISTS cards_sent ON cards (sent_at);
"""

# Escalations (store/escalations.py; store/schema.py's ESCALATIONS).
_ESCALATIONS = """
CREATE TABLE IF NOT EXISTS escalations (
    rule TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    fingerprint TEXT COLLATE "C" NOT NULL,
    labels TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    steps_done INTEGER NOT NULL,
    stopped TEXT,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (rule, key)
);
"""

# The history of sends (store/history.py; store/schema.py's HISTORY).
_HISTORY = """
CREATE TABLE IF NOT EXISTS history (
    id TEXT COLLATE "C" NOT NULL,
    target TEXT COLLATE "C" NOT NULL,
    rule TEXT NOT NULL,
    outcome TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    attempt INTEGER NOT NULL,
    parts INTEGER NOT NULL,
    errcode BIGINT,
    errmsg TEXT,
    reason TEXT,
    title TEXT NOT NULL,
    bodies TEXT NOT NULL,
    covers TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_at ON history (at);
CREATE INDEX IF NOT EXISTS history_id ON history (id);
"""

STEPS: tuple[Step, ...] = (
    Step(1, _VERSION_1),
    Step(2, _TAIL_BY_NODE),
    Step(3, _CLAIMS),
    Step(4, _ROBOT_RESERVATIONS),
    Step(5, _POSTED_ALERTS),
    Step(6, _APP_ROBOT_SENDS),
    Step(7, _CARDS),
    Step(8, _ESCALATIONS),
    Step(9, _HISTORY),
    Step(10, "ALTER TABLE silences ADD COLUMN expired_by TEXT"),  # who ended a silence
    Step(11, OUTBOX_QUEUE),  # a target's queue in sending order (store/schema.py says why)
)
