"""The history of sends end to end: a real daemon posts to the real simulator, which takes one
alert and refuses another (a robot whose keyword the message lacks: errcode 310000); both are in
the state's history with the exact body the simulator received and DingTalk's errcode and errmsg,
read with `dingtalk-bridge outbox history` and straight from the store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.store.sqlite import read_only
from tests.harness import Daemon, Simulator, am_alert_payload, bridge_cli, wait_until

SECRET = "SECthe-history-signing-secret"
ROBOTS = {
    "tok-hist-ok": {"secret": SECRET, "rate_per_minute": 0},
    "tok-hist-kw": {"keywords": ["运维"], "rate_per_minute": 0},
}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    sim = Simulator(spec={"robots": ROBOTS})
    yield sim
    sim.stop()


@pytest.fixture
def daemon(sim: Simulator) -> Iterator[Daemon]:
    config = {
        "targets": {
            "ok": {"type": "robot", "webhook": sim.robot_url("tok-hist-ok"), "secret": SECRET},
            "kw": {"type": "robot", "webhook": sim.robot_url("tok-hist-kw")},
        },
        "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
        "rules": [
            {"name": "good", "match": {"route": "ok"}, "targets": ["ok"]},
            {"name": "refused", "match": {"route": "kw"}, "targets": ["kw"]},
        ],
    }
    daemon = Daemon(config)
    yield daemon
    daemon.stop()


def history(daemon: Daemon, *args: str) -> list[dict[str, Any]]:
    result = bridge_cli("outbox", "history", "-c", str(daemon.config_path), "--json", *args)
    assert result.returncode == 0, result.stderr
    listed: list[dict[str, Any]] = json.loads(result.stdout)
    return listed


def test_a_delivery_and_a_dead_letter_are_in_the_history_with_dingtalks_answer(
    sim: Simulator, daemon: Daemon
) -> None:
    for name, route in (("HistoryDelivered", "ok"), ("HistoryRefused", "kw")):
        response = daemon.post("/am", am_alert_payload(name, route=route))
        assert response.status_code == 200, response.text
    wait_until(lambda: len(history(daemon)) == 2, 20, interval=0.2)

    dead, delivered = sorted(history(daemon), key=lambda s: str(s["outcome"]))
    assert (delivered["outcome"], delivered["target"], delivered["rule"]) == (
        "delivered",
        "ok",
        "good",
    )
    assert (delivered["errcode"], delivered["errmsg"], delivered["attempt"]) == (None, None, 1)
    (message,) = sim.messages(token="tok-hist-ok")
    (body,) = delivered["bodies"]
    assert "HistoryDelivered" in message["title"] and "HistoryDelivered" in body
    assert json.loads(body)["markdown"]["text"] == message["text"]  # what DingTalk showed
    for secret in (SECRET, "tok-hist-ok", "access_token"):
        assert secret not in body

    assert (dead["outcome"], dead["target"], dead["reason"]) == ("dead", "kw", "dingtalk_config")
    assert (dead["errcode"], dead["errmsg"]) == (310000, "keywords not in content")
    assert "HistoryRefused" in dead["bodies"][0] and dead["parts"] == 1

    # Searchable by a word of the body, by outcome, by id; the store says the same.
    assert [s["id"] for s in history(daemon, "--search", "historyrefused")] == [dead["id"]]
    assert [s["id"] for s in history(daemon, "--outcome", "delivered")] == [delivered["id"]]
    with read_only(daemon.dir / "state") as tx:
        assert tx is not None
        (attempt,) = tx.history.attempts(dead["id"])
    assert (attempt.errcode, attempt.bodies) == (310000, tuple(dead["bodies"]))
    listed = bridge_cli("outbox", "history", "-c", str(daemon.config_path))
    assert "310000" in listed.stdout and "keywords not in content" in listed.stdout
    # The daemon's log names the message by the id the history has.
    assert f"id={dead['id']}" in daemon.log() and f"id={delivered['id']}" in daemon.log()
