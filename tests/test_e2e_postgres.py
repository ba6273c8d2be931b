"""The real daemon on PostgreSQL (`state: {url}`): 200 only after the commit, 503 while the
database is down, and accepting and delivering again by itself once it is back; the URL's
password in neither the log nor /-/ready nor `check`. On the session's throwaway cluster
(tests/pgcluster.py); skipped without PostgreSQL (failed under CI)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import requests
import yaml

from bridge.store import migrations, pgschema
from tests.harness import (
    Daemon,
    Simulator,
    am_alert_payload,
    bridge_cli,
    quick_robot_config,
    wait_until,
)
from tests.pgcluster import PASSWORD, Cluster


def config(sim: Simulator, url: str) -> dict[str, Any]:
    return quick_robot_config(sim, state={"url": url})


@pytest.fixture
def daemon(sim: Simulator, pg_url: str) -> Iterator[Daemon]:
    running = Daemon(config(sim, pg_url))
    yield running
    running.stop()


def delivered(sim: Simulator, name: str) -> bool:
    return any(name in m.get("text", "") + m.get("title", "") for m in sim.messages())


def committed_or_delivered(url: str, sim: Simulator, name: str) -> bool:
    """The alert's outbox row is in the database, or it already left it for the chat (which
    only a committed row does)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT message, event FROM outbox").fetchall()
    return any(name in f"{message}{event}" for message, event in rows) or delivered(sim, name)


def test_accepts_after_the_commit_answers_503_while_the_database_is_down_and_recovers(
    daemon: Daemon, sim: Simulator, pg_cluster: Cluster, pg_url: str
) -> None:
    first = daemon.post("/am", am_alert_payload("PgBeforeOutage"))
    assert first.status_code == 200, first.text
    assert committed_or_delivered(pg_url, sim, "PgBeforeOutage")
    wait_until(lambda: delivered(sim, "PgBeforeOutage"), timeout=20)

    pg_cluster.stop()
    try:
        refused = daemon.post("/am", am_alert_payload("PgDuringOutage"), timeout=30)
        assert refused.status_code == 503, refused.text
        ready = requests.get(f"{daemon.url}/-/ready", timeout=30)
        assert ready.status_code == 503
        assert "the state store cannot take commits" in ready.json()["problems"]
    finally:
        pg_cluster.start()

    # Alertmanager retries until it gets a 200: the bridge reconnects by itself.
    answer = wait_until(
        lambda: (r := daemon.post("/am", am_alert_payload("PgAfterOutage"), timeout=30)).ok and r,
        timeout=60,
        interval=0.5,
    )
    assert answer.status_code == 200
    assert committed_or_delivered(pg_url, sim, "PgAfterOutage")
    wait_until(lambda: delivered(sim, "PgAfterOutage"), timeout=30)
    wait_until(lambda: requests.get(f"{daemon.url}/-/ready", timeout=30).ok, timeout=30)
    assert "state database unreachable" in daemon.log()
    assert "state database reachable again" in daemon.log()


def test_the_database_password_is_never_in_the_log_ready_or_check(
    daemon: Daemon, sim: Simulator, pg_cluster: Cluster, pg_url: str
) -> None:
    assert daemon.post("/am", am_alert_payload("PgSecret")).status_code == 200
    ready = requests.get(f"{daemon.url}/-/ready", timeout=30)
    pg_cluster.stop()  # errors and warnings while it is down must not carry it either
    try:
        assert daemon.post("/am", am_alert_payload("PgSecretDown"), timeout=30).status_code == 503
        down = requests.get(f"{daemon.url}/-/ready", timeout=30)
    finally:
        pg_cluster.start()
    checked = bridge_cli("check", "-c", str(daemon.config_path))
    assert checked.returncode == 0, checked.stderr
    current = migrations.latest(pgschema.STEPS)
    assert f"reachable, schema version {current} (current)" in checked.stdout
    assert "postgres:***@127.0.0.1" in checked.stdout + daemon.log()
    for text in (daemon.log(), ready.text, down.text, checked.stdout, checked.stderr):
        assert PASSWORD not in text


def test_check_says_an_unreachable_database_without_its_password(
    sim: Simulator, pg_cluster: Cluster, pg_url: str, tmp_path: Any
) -> None:
    cfg = config(sim, pg_url.replace(f":{pg_cluster.port}/", ":1/"))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg), "utf-8")
    checked = bridge_cli("check", "-c", str(path))
    assert checked.returncode == 1
    assert "cannot be reached" in checked.stderr
    assert PASSWORD not in checked.stdout + checked.stderr
