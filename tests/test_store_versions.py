"""Schema versions: each backend records the version it reached, applies what is pending in
order, and refuses a database a newer bridge wrote. The PostgreSQL half runs on the session's
throwaway cluster (tests/pgcluster.py) and skips without PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from bridge.store import migrations, pgschema, postgres, schema
from bridge.store.migrations import Step
from bridge.store.postgres import PostgresStore, verify_database
from bridge.store.schema import SCHEMA_VERSION
from bridge.store.sqlite import SqliteStore
from bridge.store.statedir import DB_NAME, StateError
from tests.pgcluster import PASSWORD, Cluster

STEPS = (Step(1, "one"), Step(2, "two"), Step(3, "three"))


@pytest.mark.parametrize(
    ("current", "todo"),
    [(None, [1, 2, 3]), (1, [2, 3]), (2, [3]), (3, [])],
)
def test_pending_steps_are_those_after_the_recorded_version_in_order(
    current: int | None, todo: list[int]
) -> None:
    assert [s.version for s in migrations.pending(current, STEPS, "db")] == todo


def test_a_version_newer_than_the_code_is_refused_with_what_to_do() -> None:
    with pytest.raises(StateError, match="schema version 4, newer than this bridge knows"):
        migrations.pending(4, STEPS, "db")


def _sqlite_version(directory: Path) -> str:
    with sqlite3.connect(directory / DB_NAME) as conn:
        return str(
            conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        )


def test_sqlite_records_its_schema_version_and_refuses_a_newer_database(tmp_path: Path) -> None:
    SqliteStore(tmp_path).close()
    assert _sqlite_version(tmp_path) == str(SCHEMA_VERSION)
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StateError, match="schema version 99, newer than this bridge knows"):
        SqliteStore(tmp_path)
    assert _sqlite_version(tmp_path) == "99"  # refused, not rewritten


def _pg_version(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    assert row is not None
    return str(row[0])


def test_postgresql_migrates_an_empty_database_and_records_the_version(
    pg_cluster: Cluster,
) -> None:
    name = "empty_for_migration"
    url = pg_cluster.empty_database(name)  # no tables at all
    assert "no schema yet" in verify_database(url)
    PostgresStore(url).close()
    assert _pg_version(url) == str(migrations.latest(pgschema.STEPS))
    assert verify_database(url).endswith(f"schema version {_pg_version(url)} (current)")
    pg_cluster.drop_database(name)


def test_postgresql_applies_a_pending_step_once_with_its_version(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = migrations.latest(pgschema.STEPS) + 1
    later = Step(version, "CREATE TABLE later_step (n INTEGER); INSERT INTO later_step VALUES (1)")
    monkeypatch.setattr(postgres, "STEPS", (*pgschema.STEPS, later))
    assert f"migrated to {version} at the next start" in verify_database(pg_url)
    PostgresStore(pg_url).close()
    PostgresStore(pg_url).close()  # a second start finds nothing pending
    assert _pg_version(pg_url) == str(version)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM later_step").fetchone() == (1,)


def test_postgresql_refuses_a_database_newer_than_the_code(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StateError, match="schema version 99, newer than this bridge knows"):
        PostgresStore(pg_url)
    with pytest.raises(StateError, match="newer than this bridge knows"):
        verify_database(pg_url)
    assert _pg_version(pg_url) == "99"


def test_an_unreachable_or_refusing_database_is_said_without_the_password(
    pg_cluster: Cluster, pg_url: str
) -> None:
    wrong = pg_url.replace(PASSWORD, "Wr0ng-pass-CANARY")
    with pytest.raises(StateError) as refused:
        PostgresStore(wrong, timeout=1.0)
    assert "password authentication failed" in str(refused.value)
    assert "Wr0ng-pass-CANARY" not in str(refused.value)
    assert "postgres:***@127.0.0.1" in str(refused.value)
    nowhere = pg_url.replace(f":{pg_cluster.port}/", ":1/")
    with pytest.raises(StateError) as unreachable:
        verify_database(nowhere)
    assert "cannot be reached" in str(unreachable.value)
    assert PASSWORD not in str(unreachable.value)


def test_both_backends_know_the_same_steps_the_latest_ordering_the_queue() -> None:
    assert [s.version for s in schema.STEPS] == [s.version for s in pgschema.STEPS]
    by_version = {s.version: s.script for s in schema.STEPS}
    assert SCHEMA_VERSION == 11 and "CREATE TABLE IF NOT EXISTS history" in by_version[9]
    assert "expired_by" in by_version[10] and "expired_by" in pgschema.STEPS[-2].script
    assert "outbox_queue" in by_version[11] and "outbox_queue" in pgschema.STEPS[-1].script


def test_a_version_8_sqlite_database_gains_the_history_and_keeps_its_rows(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        for step in schema.STEPS:
            if step.version <= 8:
                conn.executescript(step.script)
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '8')")
        conn.execute("INSERT INTO silences VALUES ('s1', '[]', 0, 1, 'c', 'a', 0)")
    store = SqliteStore(tmp_path)
    with store.reading() as tx:
        assert tx.history.recent() == [] and [s.id for s in tx.silences.load()] == ["s1"]
    store.close()
    assert _sqlite_version(tmp_path) == str(SCHEMA_VERSION)
