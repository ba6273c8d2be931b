"""`silence` and `outbox` commands against a running daemon and its state store."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import Daemon, Simulator, am_alert_payload, bridge_cli, wait_until

SECRET = "SECright-secret"


def cli(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return bridge_cli(*args[:2], "-c", str(daemon.config_path), *args[2:])


@pytest.fixture
def sim() -> Iterator[Simulator]:
    sim = Simulator(spec={"robots": {"tok": {"secret": SECRET}}})
    yield sim
    sim.stop()


def config_for(sim: Simulator, secret: str = SECRET) -> dict[str, Any]:
    return {
        "targets": {
            "ops": {
                "type": "robot",
                "webhook": sim.robot_url("tok"),
                "secret": secret,
                "retry": {"initial": "0.2s", "max": "1s"},
            }
        },
        "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
        "rules": [{"name": "all", "targets": ["ops"], "repeat_interval": 0}],
    }


def names(sim: Simulator) -> list[str]:
    return [m["title"].split("] ")[-1] for m in sim.messages()]


def test_a_silence_added_at_runtime_swallows_matching_alerts_until_expired(sim: Simulator) -> None:
    daemon = Daemon(config_for(sim))
    try:
        added = cli(
            daemon,
            "silence",
            "add",
            "--match",
            "alertname=~Disk.*",
            "--for",
            "2h",
            "--comment",
            "disk maintenance",
        )
        assert added.returncode == 0, added.stderr
        silence_id = added.stdout.split()[1]
        listed = cli(daemon, "silence", "list")
        assert silence_id in listed.stdout and "disk maintenance" in listed.stdout
        time.sleep(1.2)  # the daemon re-reads runtime silences every second

        swallowed = daemon.post("/am", am_alert_payload("DiskFull"))
        assert swallowed.status_code == 200
        assert (swallowed.json()["silenced"], swallowed.json()["messages"]) == (1, 0)
        assert daemon.post("/am", am_alert_payload("CpuHigh")).status_code == 200
        sim.wait_messages(1)
        wait_until(lambda: f"silence={silence_id}" in daemon.log())
        assert names(sim) == ["CpuHigh"]

        expired = cli(daemon, "silence", "expire", silence_id[:6])
        assert expired.returncode == 0, expired.stderr
        time.sleep(1.2)
        assert daemon.post("/am", am_alert_payload("DiskFull", instance="other")).status_code == 200
        sim.wait_messages(2)
        assert names(sim) == ["CpuHigh", "DiskFull"]
    finally:
        daemon.stop()


def test_dead_letters_are_listed_shown_retried_and_purged(sim: Simulator) -> None:
    daemon = Daemon(config_for(sim, secret="SECwrong-secret"))
    try:
        for name in ("First", "Second"):
            assert daemon.post("/am", am_alert_payload(name)).status_code == 200
        wait_until(lambda: daemon.log().count("dead letter") == 2)
        listed = cli(daemon, "outbox", "list", "--status", "dead", "--json")
        rows = json.loads(listed.stdout)
        assert [(r["status"], r["reason"], r["errcode"]) for r in rows] == [
            ("dead", "dingtalk_config", 310000)
        ] * 2
        assert "sign" in rows[0]["errmsg"]
        shown = json.loads(cli(daemon, "outbox", "show", rows[0]["id"][-10:]).stdout)
        assert shown["id"] == rows[0]["id"] and "First" in shown["title"]
        assert "SECwrong-secret" not in listed.stdout + json.dumps(shown)
    finally:
        daemon.stop()

    # Fix the config (the right secret) and send the dead letters again.
    fixed = Daemon(config_for(sim), directory=daemon.dir)
    try:
        retried = cli(fixed, "outbox", "retry", "--all-dead")
        assert retried.returncode == 0 and "2 message(s)" in retried.stdout
        sim.wait_messages(2)
        assert sorted(names(sim)) == ["First", "Second"]
        wait_until(lambda: cli(fixed, "outbox", "list").stdout.strip() == "the outbox is empty")
    finally:
        fixed.stop()


def test_purge_removes_dead_letters(sim: Simulator) -> None:
    daemon = Daemon(config_for(sim, secret="SECwrong-secret"))
    try:
        assert daemon.post("/am", am_alert_payload("Doomed")).status_code == 200
        wait_until(lambda: "dead letter" in daemon.log())
        assert cli(daemon, "outbox", "purge").returncode == 2  # nothing named: refused
        purged = cli(daemon, "outbox", "purge", "--dead")
        assert purged.stdout.strip() == "1 message(s) removed"
        assert cli(daemon, "outbox", "list").stdout.strip() == "the outbox is empty"
    finally:
        daemon.stop()


@pytest.mark.parametrize(
    "when",
    [["--for", "999999999d"], ["--for", "366d"], ["--until", "9999-12-31T00:00:00+00:00"]],
)
def test_silence_add_refuses_a_silence_over_a_year(sim: Simulator, when: list[str]) -> None:
    daemon = Daemon(config_for(sim))
    try:
        added = cli(daemon, "silence", "add", "--match", "alertname=X", *when)
        assert added.returncode == 2
        assert "at most 365d" in added.stderr and "Traceback" not in added.stderr
        assert "no silences" in cli(daemon, "silence", "list").stdout
        ok = cli(daemon, "silence", "add", "--match", "alertname=X", "--for", "365d")
        assert ok.returncode == 0, ok.stderr
    finally:
        daemon.stop()


def test_silence_list_survives_bad_rows_already_stored(sim: Simulator) -> None:
    from tests.test_e2e_chat import store_bad_silences

    daemon = Daemon(config_for(sim))
    try:
        store_bad_silences(daemon)
        listed = cli(daemon, "silence", "list", "--all")
        assert listed.returncode == 0, listed.stderr
        assert "farfuture01" in listed.stdout and "after 9999" in listed.stdout
        assert "brokenrow01" not in listed.stdout
        assert "brokenrow01" in listed.stderr and "Traceback" not in listed.stderr
    finally:
        daemon.stop()
