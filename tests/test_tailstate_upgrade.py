"""Upgrading a state from before node ids (schema version 1) keeps the file inputs where they
stopped: its offsets, and its memory of the first run, belong to no node until the first node
that starts the input adopts them; a second node sharing the state starts afresh, on its own."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from bridge.model import Position
from bridge.store import pgschema, postgres, schema
from bridge.store.postgres import PostgresStore
from bridge.store.statedir import DB_NAME
from tests.pgcluster import Cluster
from tests.test_filetail_units import file_spec, stepped_tailer

LINES = [f"ERROR app - line={n}" for n in range(1, 6)]


def version_1_state(
    directory: Path, tail_files: list[tuple[object, ...]], inputs: list[str]
) -> None:
    """A SQLite state as a version-1 bridge left it: its schema, with these tail rows (input,
    dev, ino, path, offset, fp, fp_len, seen_at) and inputs that had run."""
    directory.mkdir(parents=True)
    with sqlite3.connect(directory / DB_NAME) as conn:
        conn.executescript(schema.SCHEMA)  # exactly version 1's tables
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
        conn.executemany("INSERT INTO tail_files VALUES (?, ?, ?, ?, ?, ?, ?, ?)", tail_files)
        conn.executemany("INSERT INTO tail_inputs VALUES (?, 1.0)", [(i,) for i in inputs])
    conn.close()


def test_a_version_1_sqlite_state_keeps_reading_where_it_stopped(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    log.write_text("".join(f"{line}\n" for line in LINES[:3]))
    spec = file_spec(logs, read_from="beginning")

    # What the version-1 bridge had committed: the real position after three lines (the
    # tailer of today computes it: the same fingerprint a version-1 tailer wrote).
    before = stepped_tailer(tmp_path, spec, node="measure", state="measure")
    before.round()
    assert before.lines == LINES[:3]
    with before.store.reading() as tx:
        [(key, position)] = tx.tailstate.load("measure", "log").items()
    before.close()
    row = ("log", *key, position.path, position.offset, position.fp, position.fp_len, 100.0)
    version_1_state(tmp_path / "state", [row], ["log"])

    with log.open("a") as out:
        out.write("".join(f"{line}\n" for line in LINES[3:]))  # written during the upgrade
    upgraded = stepped_tailer(tmp_path, spec, node="web-1")
    try:
        upgraded.round()
        assert upgraded.lines == LINES[3:]  # not read again from the beginning
        with upgraded.store.reading() as tx:
            assert tx.tailstate.load("web-1", "log")[key].offset == log.stat().st_size
    finally:
        upgraded.close()
    with sqlite3.connect(tmp_path / "state" / DB_NAME) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        nodes = conn.execute("SELECT DISTINCT node FROM tail_files").fetchall()
        assert int(version[0]) == schema.SCHEMA_VERSION and nodes == [("web-1",)]
    conn.close()

    # Another node sharing this state later: the input is new to it, and web-1's offsets are not
    # its own (it reads its own app.log from the beginning, as configured).
    other = stepped_tailer(tmp_path, spec, node="web-2")
    try:
        assert other.tailer._first_run
        with other.store.reading() as tx:
            assert tx.tailstate.load("web-2", "log") == {}
            assert key in tx.tailstate.load("web-1", "log")
    finally:
        other.close()


def test_postgresql_rows_from_before_go_to_the_first_node_that_starts_the_input(
    pg_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "tail_by_node_upgrade"
    url = pg_cluster.empty_database(name)
    try:
        with monkeypatch.context() as old:  # the database as a version-1 bridge left it
            old.setattr(postgres, "STEPS", pgschema.STEPS[:1])
            PostgresStore(url).close()
        with psycopg.connect(url) as conn:
            conn.execute(
                'INSERT INTO tail_files (input, dev, ino, path, "offset", fp, fp_len, seen_at)'
                " VALUES ('log', 1, 10, '/var/log/app.log', 42, 'ff', 8, 1.0),"
                " ('audit', 1, 11, '/var/log/audit.log', 7, 'ee', 8, 1.0)"
            )
            conn.execute(
                "INSERT INTO tail_inputs (input, started_at) VALUES ('log', 1.0), ('audit', 1.0)"
            )
        one, two = PostgresStore(url), PostgresStore(url)  # two replicas, after the upgrade
        try:
            with one.transaction() as tx:
                assert not tx.tailstate.first_run("web-1", "log", 2.0)  # it ran before
                assert tx.tailstate.load("web-1", "log") == {
                    (1, 10): Position("/var/log/app.log", 42, "ff", 8)
                }
            with two.transaction() as tx:
                assert tx.tailstate.first_run("web-2", "log", 3.0)  # adopted already: new here
                assert tx.tailstate.load("web-2", "log") == {}
                assert not tx.tailstate.first_run("web-2", "audit", 3.0)  # web-1 never ran it
                assert set(tx.tailstate.load("web-2", "audit")) == {(1, 11)}
            with one.reading() as tx:
                assert tx.tailstate.load("web-1", "audit") == {}
        finally:
            one.close()
            two.close()
    finally:
        pg_cluster.drop_database(name)
