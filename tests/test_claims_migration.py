"""A state written before claims existed (schema version 1) is migrated at the next start on both
backends: its queued rows are kept, and claimable."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg

from bridge.model import Message
from bridge.store import pgschema, schema
from bridge.store.api import Store
from bridge.store.codec import message_to_json
from bridge.store.migrations import VERSION_KEY, latest
from bridge.store.postgres import PostgresStore
from bridge.store.sqlite import SqliteStore
from bridge.store.statedir import DB_NAME
from tests.pgcluster import Cluster

NOW = 1_700_000_000.0
MESSAGE = message_to_json(Message("text", "t", "queued before claims"))
ROW = (
    "INSERT INTO outbox (id, target, rule, fingerprint, event_status, message, status,"
    " created_at, not_before, attempts, parts_sent, updated_at) VALUES ('old', 'ops', 'r', 'fp',"
    f" 'firing', '{MESSAGE}', 'pending', {NOW}, {NOW}, 0, 0, {NOW})"
)


def claimed_after_the_upgrade(store: Store) -> list[str]:
    with store.transaction() as tx:
        return [r.id for r in tx.outbox.claim("ops", "replica", NOW, NOW + 30, 10)]


def test_sqlite_from_version_1(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.executescript(schema.SCHEMA)
        conn.execute(f"INSERT INTO meta (key, value) VALUES ('{VERSION_KEY}', '1')")
        conn.execute(ROW)
    store = SqliteStore(tmp_path)
    try:
        assert claimed_after_the_upgrade(store) == ["old"]
    finally:
        store.close()
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = ?", (VERSION_KEY,)).fetchone()
    assert version == (str(latest(schema.STEPS)),)


def test_postgresql_from_version_1(pg_cluster: Cluster) -> None:
    name = "before_claims"
    url = pg_cluster.empty_database(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(pgschema.STEPS[0].script.encode())
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute(f"INSERT INTO meta (key, value) VALUES ('{VERSION_KEY}', '1')")
        conn.execute(ROW.encode())
    store = PostgresStore(url)
    try:
        assert claimed_after_the_upgrade(store) == ["old"]
    finally:
        store.close()
    with psycopg.connect(url) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = %s", (VERSION_KEY,)).fetchone()
    assert version == (str(latest(pgschema.STEPS)),)
    pg_cluster.drop_database(name)
