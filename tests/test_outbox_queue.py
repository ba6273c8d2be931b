"""Schema version 11: the outbox's index in sending order (outbox_queue) replaces the one by due
time (outbox_due) on both backends, so that a sender's claim reads the rows it takes instead of
sorting every due row of its target inside its write transaction (store/schema.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg

from bridge.model import Message
from bridge.store import pgschema, schema
from bridge.store.api import Store
from bridge.store.codec import message_to_json
from bridge.store.migrations import VERSION_KEY
from bridge.store.outbox import _COLUMNS
from bridge.store.postgres import PostgresStore
from bridge.store.sqlite import SqliteStore
from bridge.store.statedir import DB_NAME
from tests.pgcluster import Cluster

NOW = 1_700_000_000.0
MESSAGE = message_to_json(Message("text", "t", "queued"))
# (id, created_at, not_before): c is due first but created last; b is not due yet.
ROWS = [("a", NOW - 30, NOW - 30), ("b", NOW - 20, NOW + 60), ("c", NOW - 10, NOW - 40)]
VERSION_10 = """
DROP INDEX IF EXISTS outbox_queue;
CREATE INDEX outbox_due ON outbox (target, status, not_before, created_at);
UPDATE meta SET value = '10' WHERE key = 'schema_version';
"""


def insert(conn: sqlite3.Connection | psycopg.Connection, mark: str) -> None:
    for id_, created, due in ROWS:
        conn.execute(
            "INSERT INTO outbox (id, target, rule, fingerprint, event_status, message, status,"
            f" created_at, not_before, attempts, parts_sent, updated_at) VALUES ({mark}, 'ops',"
            f" 'r', 'fp', 'firing', {mark}, 'pending', {mark}, {mark}, 0, 0, {mark})",
            (id_, MESSAGE, created, due, created),
        )


def claimed(store: Store) -> list[str]:
    with store.transaction() as tx:
        return [r.id for r in tx.outbox.claim("ops", "replica", NOW, NOW + 30, 10)]


def test_sqlite_version_10_gets_the_queue_index_and_claims_oldest_due_first(
    tmp_path: Path,
) -> None:
    SqliteStore(tmp_path).close()  # the current schema, then set back to version 10's index
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.executescript(VERSION_10)
        insert(conn, "?")
    store = SqliteStore(tmp_path)
    try:
        assert claimed(store) == ["a", "c"]  # oldest first among the due; b is not due yet
    finally:
        store.close()
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        indexes = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'outbox'"
                " AND sql IS NOT NULL"
            )
        }
        version = conn.execute("SELECT value FROM meta WHERE key = ?", (VERSION_KEY,)).fetchone()
        claim = (
            f"SELECT {_COLUMNS} FROM outbox WHERE target = 'ops' AND status = 'pending'"
            f" AND not_before <= {NOW} ORDER BY created_at, id LIMIT 10"
        )
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {claim}")]
        being_sent = (
            "SELECT target, COUNT(*) FROM outbox WHERE status = 'pending'"
            f" AND claimed_until > {NOW} GROUP BY target"
        )
        count_plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {being_sent}")]
    assert indexes == {"outbox_queue"}
    assert version == (str(schema.SCHEMA_VERSION),)
    # Walked in sending order: no sort of every due row.
    assert plan == ["SEARCH outbox USING INDEX outbox_queue (target=? AND status=?)"]
    # /-/ready's count of rows being sent reads the index, not every row of the table.
    assert count_plan == ["SCAN outbox USING COVERING INDEX outbox_queue"]


def test_postgresql_version_10_gets_the_queue_index(pg_cluster: Cluster) -> None:
    name = "outbox_queue"
    url = pg_cluster.empty_database(name)
    PostgresStore(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(VERSION_10.encode())
        insert(conn, "%s")
    store = PostgresStore(url)
    try:
        assert claimed(store) == ["a", "c"]
    finally:
        store.close()
    with psycopg.connect(url) as conn:
        indexes = {
            name
            for (name,) in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'outbox'"
                " AND indexname <> 'outbox_pkey'"
            )
        }
        version = conn.execute("SELECT value FROM meta WHERE key = %s", (VERSION_KEY,)).fetchone()
    assert indexes == {"outbox_queue"}
    assert version == (str(pgschema.STEPS[-1].version),)
    pg_cluster.drop_database(name)
