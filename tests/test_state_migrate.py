"""`dingtalk-bridge state migrate`: a real SQLite state, filled by a real daemon, copied into a
real PostgreSQL; a daemon started there delivers what was pending, and `outbox list` and
`silence list` show the same as before. And the refusals: a source in use by a running bridge
or at another schema version, a target that holds data (unless --force) or is newer, wrong
arguments; the password never printed."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import yaml

from bridge.store import schema
from bridge.store.statedir import DB_NAME
from tests.harness import (
    Daemon,
    Simulator,
    am_alert_payload,
    bridge_cli,
    quick_robot_config,
    wait_until,
)
from tests.pgcluster import PASSWORD, Cluster

TOKEN = "tok-a"  # quick_robot_config's robot
PENDING = ("PendingOne", "PendingTwo", "PendingThree")


def source_config(sim: Simulator, logs: Path) -> dict[str, Any]:
    """The single-host install: SQLite, a rule that holds team=db alerts in a group for an hour,
    and a file input on `logs`/app.log."""
    cfg = quick_robot_config(sim)
    cfg["inputs"]["app"] = {
        "type": "file",
        "paths": [str(logs / "app.log")],
        "read_from": "beginning",
        "poll_interval": "100ms",
        "patterns": [{"regex": r"ERROR (?P<what>\S+)"}],
    }
    cfg["rules"] = [
        {
            "name": "grouped",
            "matchers": ["team=db"],
            "group_by": ["team"],
            "group_wait": "1h",
            "targets": ["ops"],
        },
        *cfg["rules"],
    ]
    return cfg


def delivered(sim: Simulator) -> Counter[str]:
    """How many messages name each alert (or log line) of this test."""
    names = (*PENDING, "FromFileOne", "FromFileTwo")
    return Counter(n for m in sim.messages(token=TOKEN) for n in names if n in m["text"])


def migrate(state: Path, url_file: Path, *extra: str) -> Any:
    result = bridge_cli(
        "state", "migrate", "--from", f"sqlite:{state}", "--to-file", str(url_file), *extra
    )
    assert PASSWORD not in result.stdout + result.stderr
    return result


def listing(config: Path, *command: str) -> str:
    result = bridge_cli(*command, "-c", str(config))
    assert result.returncode == 0, result.stderr
    return result.stdout


def copied_rows(stdout: str) -> dict[str, int]:
    """The per-table summary: {table: rows}."""
    rows = {}
    for line in stdout.splitlines():
        cells = line.split()
        if len(cells) >= 2 and cells[1].isdigit() and cells[0] != "copied":
            rows[cells[0]] = int(cells[1])
    return rows


@pytest.fixture
def url_file(pg_cluster: Cluster, tmp_path: Path) -> Path:
    """A file holding the URL of an empty database (no schema: migrate creates it)."""
    path = tmp_path / "database-url"
    path.write_text(pg_cluster.empty_database("migrate_target") + "\n")
    return path


def test_a_daemons_sqlite_state_moves_to_postgresql_and_is_delivered_there(
    sim: Simulator, url_file: Path, tmp_path: Path
) -> None:
    home = tmp_path / "single-host"
    (home / "logs").mkdir(parents=True)
    log = home / "logs" / "app.log"
    log.write_text("")
    daemon = Daemon(source_config(sim, home / "logs"), directory=home)
    try:
        # A dead letter (a config error: not retried), then a robot that refuses for good.
        sim.control(
            "faults", {"path": "/robot/send", "token": TOKEN, "action": {"errcode": 310000}}
        )
        assert daemon.post("/am", am_alert_payload("DeadOne")).status_code == 200
        wait_until(lambda: '"dead"' in listing(daemon.config_path, "outbox", "list", "--json"))
        fault = {
            "path": "/robot/send",
            "token": TOKEN,
            "count": 100_000,
            "action": {"http_status": 500},
        }
        sim.control("faults", fault)
        for name in PENDING:
            assert daemon.post("/am", am_alert_payload(name)).status_code == 200
        log.write_text("ERROR FromFileOne\n")
        wait_until(lambda: "FromFileOne" in listing(daemon.config_path, "outbox", "list", "--json"))
        assert daemon.post("/am", am_alert_payload("HeldInGroup", team="db")).status_code == 200
        added = bridge_cli(
            "silence", "add", "-c", str(daemon.config_path), "--match", "alertname=Quiet",
            "--for", "2h", "--comment", "moving",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr

        running = migrate(home / "state", url_file)  # the daemon still holds the file
        assert running.returncode == 1, running.stdout + running.stderr
        assert "in use by another process" in running.stderr
    finally:
        daemon.stop()
    before = {
        "outbox": listing(daemon.config_path, "outbox", "list", "--json"),
        "silences": listing(daemon.config_path, "silence", "list"),
    }
    assert [r["status"] for r in json.loads(before["outbox"])].count("pending") == len(PENDING) + 1

    result = migrate(home / "state", url_file)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = copied_rows(result.stdout)
    assert rows["outbox"] == len(PENDING) + 2 and "4 pending" in result.stdout
    assert rows["silences"] == 1 and rows["groups"] == 1 and rows["group_alerts"] == 1
    assert rows["nflog"] >= 1 and rows["tail_files"] == 1 and rows["tail_inputs"] == 1
    assert "counts verified" in result.stdout
    with sqlite3.connect(home / "state" / DB_NAME) as source:  # left as the bridge keeps it
        assert source.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    source.close()

    sim.control("reset")  # the robot takes messages again
    after = tmp_path / "replica"
    after.mkdir()
    url = url_file.read_text().strip()
    on_pg = {**source_config(sim, home / "logs"), "state": {"url_file": str(url_file)}}
    with log.open("a") as out:
        out.write("ERROR FromFileTwo\n")  # the same host: its offset moved with the state
    config = after / "config.yaml"
    config.write_text(yaml.safe_dump(on_pg), "utf-8")
    assert listing(config, "outbox", "list", "--json") == before["outbox"]
    assert listing(config, "silence", "list") == before["silences"]
    replica = Daemon(on_pg, directory=after)
    expected = {*PENDING, "FromFileOne", "FromFileTwo"}
    try:
        wait_until(lambda: set(delivered(sim)) >= expected, timeout=30)
        # It resumed the file where the SQLite daemon stopped: one line read, not both (a line
        # read twice would be absorbed by the copied notification log, so count the reads).
        files = requests.get(f"{replica.url}/-/ready", timeout=10).json()["files"]["app"]
        assert files["lines_matched"] == 1, files
        dead = json.loads(listing(config, "outbox", "list", "--status", "dead", "--json"))
        assert [r["title"] for r in dead] == [
            r["title"] for r in json.loads(before["outbox"]) if r["status"] == "dead"
        ]
    finally:
        replica.stop()
    assert all(delivered(sim)[name] == 1 for name in expected), delivered(sim)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM groups").fetchone() == (1,)
    assert PASSWORD not in replica.log()


def sqlite_state(directory: Path, version: int | None = None) -> Path:
    """A state made by the current code (an outbox row in it), its version set to `version`."""
    from bridge.store.sqlite import SqliteStore

    store = SqliteStore(directory)
    with store.transaction() as tx:
        tx.silences.add((), 1.0, 2.0, "old", "me", 1.0)
    store.close()
    if version is not None:
        with sqlite3.connect(directory / DB_NAME) as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
        conn.close()
    return directory


def test_a_source_at_another_schema_version_is_refused_with_what_to_do(
    url_file: Path, tmp_path: Path
) -> None:
    older = migrate(sqlite_state(tmp_path / "old", schema.SCHEMA_VERSION - 1), url_file)
    assert older.returncode == 1
    assert "start this version of the bridge on it once" in older.stderr
    newer = migrate(sqlite_state(tmp_path / "new", schema.SCHEMA_VERSION + 1), url_file)
    assert newer.returncode == 1 and "newer than this bridge's" in newer.stderr
    with psycopg.connect(url_file.read_text().strip()) as conn:  # nothing written
        assert conn.execute("SELECT to_regclass('silences')").fetchone() == (None,)


def test_a_target_holding_data_is_refused_unless_forced(url_file: Path, tmp_path: Path) -> None:
    state = sqlite_state(tmp_path / "state")
    assert migrate(state, url_file).returncode == 0
    again = migrate(state, url_file)
    assert again.returncode == 1
    assert "already holds data (silences 1 rows)" in again.stderr
    assert "--force" in again.stderr
    forced = migrate(state, url_file, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "replaced what the target held (--force): silences 1" in forced.stdout
    with psycopg.connect(url_file.read_text().strip()) as conn:
        assert conn.execute("SELECT COUNT(*) FROM silences").fetchone() == (1,)


def test_a_target_newer_than_this_bridge_is_refused(url_file: Path, tmp_path: Path) -> None:
    state = sqlite_state(tmp_path / "state")
    url = url_file.read_text().strip()
    assert migrate(state, url_file).returncode == 0
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    refused = migrate(state, url_file, "--force")
    assert refused.returncode == 1 and "newer than this bridge knows" in refused.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--from", "{state}", "--to", "postgresql://u:CANARY-pw@h/db"], "sqlite:PATH"),
        (["--from", "sqlite:/nowhere", "--to", "postgresql://u:CANARY-pw@h/db"], "/nowhere"),
        (["--from", "sqlite:{state}", "--to", "mysql://u:CANARY-pw@h/db"], "PostgreSQL URL"),
        (["--from", "sqlite:{state}", "--to-file", "/nowhere/url"], "--to-file /nowhere/url"),
    ],
)
def test_wrong_arguments_exit_2_without_the_password(
    args: list[str], says: str, tmp_path: Path
) -> None:
    state = sqlite_state(tmp_path / "state")  # a real source: only the named part is wrong
    result = bridge_cli("state", "migrate", *(a.replace("{state}", str(state)) for a in args))
    assert result.returncode == 2
    assert says in result.stderr and "CANARY" not in result.stdout + result.stderr


def test_the_url_on_the_command_line_is_shown_redacted(
    pg_cluster: Cluster, url_file: Path, tmp_path: Path
) -> None:
    state = sqlite_state(tmp_path / "state")
    url = url_file.read_text().strip()
    result = bridge_cli("state", "migrate", "--from", f"sqlite:{state / DB_NAME}", "--to", url)
    assert result.returncode == 0, result.stderr
    assert "postgres:***@127.0.0.1" in result.stdout and PASSWORD not in result.stdout
    nowhere = url.replace(f":{pg_cluster.port}/", ":1/")
    result = bridge_cli("state", "migrate", "--from", f"sqlite:{state}", "--to", nowhere)
    assert result.returncode == 3 and "nothing was written" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
