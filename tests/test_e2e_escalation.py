"""Escalation end to end: the real daemon, the simulator as DingTalk, short delays. With nobody
acking, the first step's work notice reaches the on-call after its delay and the second step's
message reaches the leads' chat; an `ack` from the chat, or the resolution, stops the next step;
a restart of the daemon in between continues without repeating a step."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness import (
    Daemon,
    Simulator,
    am_alert_payload,
    metric_value,
    scrape_metrics,
    wait_until,
)
from tests.test_e2e_chat import SECRET as CHAT_SECRET
from tests.test_e2e_chat import replies, say

APP_SECRET = "escalation-app-secret"
FIRST, SECOND = 2.0, 6.0  # the steps' delays
WAIT = 20.0


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    sim = Simulator(
        spec={
            "robots": {"tok-chat": {"rate_per_minute": 0}, "tok-leads": {"rate_per_minute": 0}},
            "apps": {
                "app-oncall": {"app_secret": APP_SECRET, "agent_id": 4242, "users": ["carol"]}
            },
        }
    )
    yield sim
    sim.stop()


def daemon_config(sim: Simulator) -> dict[str, Any]:
    robot = {"type": "robot", "rate_limit": {"messages": 0}}
    return {
        "targets": {
            "ops": {**robot, "webhook": sim.robot_url("tok-chat")},
            "leads": {**robot, "webhook": sim.robot_url("tok-leads")},
            "oncall": {
                "type": "work_notice",
                "app_key": "app-oncall",
                "app_secret": APP_SECRET,
                "agent_id": 4242,
                # Whoever is on call when the step is sent: carol (dave only covers 2020).
                "recipients": ["oncall:db"],
                "api_base": sim.url,
            },
        },
        "people": {
            "carol": {"userid": "carol"},
            "dave": {"userid": "dave"},
            "lead": {"mobile": "13800000000"},
        },
        "oncall": {
            "db": {
                "members": ["carol"],
                "rotation": "1w",
                "handover": "2026-11-30 10:00",
                "overrides": [{"start": "2020-01-01 00:00", "end": "2020-01-02", "member": "dave"}],
            }
        },
        "inputs": {
            "am": {"type": "alertmanager", "path": "/am", "dedup_window": 0},
            "chat": {
                "type": "dingtalk_robot",
                "path": "/dingtalk/robot",
                "app_secret": CHAT_SECRET,
                "allow": {"staff_ids": ["oncall-1"]},
            },
        },
        "rules": [
            {
                "name": "disk",
                "inputs": ["am"],
                "targets": ["ops"],
                "escalate": [
                    {"after": f"{FIRST:g}s", "targets": ["oncall"]},
                    {"after": f"{SECOND:g}s", "targets": ["leads"], "mention": ["lead"]},
                ],
            }
        ],
    }


@pytest.fixture
def daemon(sim: Simulator, tmp_path: Path) -> Iterator[Daemon]:
    sim.control("reset")
    daemon = Daemon(daemon_config(sim), directory=tmp_path)
    yield daemon
    daemon.stop()


def notices(sim: Simulator) -> list[dict[str, Any]]:
    return [m for m in sim.messages(token="app-oncall") if m["kind"] == "work_notice"]


def leads(sim: Simulator) -> list[dict[str, Any]]:
    return sim.messages(token="tok-leads")


def fire(daemon: Daemon, sim: Simulator) -> tuple[float, str]:
    """Post the alert; when, and the short id its message shows."""
    fired_at = time.monotonic()
    assert daemon.post("/am", am_alert_payload("DiskFull")).json()["messages"] == 1
    wait_until(lambda: len(sim.messages(token="tok-chat")) == 1, timeout=WAIT)
    text = sim.messages(token="tok-chat")[0]["text"]
    return fired_at, text.rsplit("id `", 1)[1].split("`")[0]


def first_step(sim: Simulator, fired_at: float, short_id: str) -> None:
    """The first step's work notice reaches carol after its delay, and says how to ack."""
    wait_until(lambda: notices(sim), timeout=WAIT)
    assert time.monotonic() - fired_at >= FIRST
    [notice] = notices(sim)
    assert notice["recipients"] == ["carol"]
    # In the config's language (zh-CN, the default), naming the Chinese command to type.
    assert "升级第 1/2 步：DiskFull" in notice["text"]
    assert f"@机器人 确认 {short_id}" in notice["text"]


def past_second_step() -> None:
    time.sleep(SECOND + 2.0)  # past the second step's delay, with room for a round and a send


def test_unacknowledged_it_escalates_step_by_step(sim: Simulator, daemon: Daemon) -> None:
    fired_at, short_id = fire(daemon, sim)
    [pending] = requests.get(f"{daemon.url}/-/ready", timeout=5).json()["escalations"]
    assert (pending["rule"], pending["alert"], pending["steps_sent"]) == ("disk", short_id, 0)
    first_step(sim, fired_at, short_id)
    wait_until(lambda: leads(sim), timeout=WAIT)
    assert time.monotonic() - fired_at >= SECOND
    [message] = leads(sim)
    assert "升级第 2/2 步：DiskFull" in message["text"]
    assert message["mentions"]["highlighted_mobiles"] == ["13800000000"]  # the step's mention
    assert "escalation step rule=disk" in daemon.log()
    metrics = scrape_metrics(daemon)
    assert metric_value(metrics, "escalation_steps_sent_total", rule="disk") == 2
    assert len(notices(sim)) == 1  # each step once
    [done] = requests.get(f"{daemon.url}/-/ready", timeout=5).json()["escalations"]
    assert (done["steps_sent"], done["next_step_in_seconds"]) == (2, None)


def test_an_ack_from_the_chat_stops_the_next_step(sim: Simulator, daemon: Daemon) -> None:
    fired_at, short_id = fire(daemon, sim)
    first_step(sim, fired_at, short_id)
    say(daemon, sim, f"确认 {short_id}")  # as the step says, in Chinese
    wait_until(lambda: replies(sim), timeout=WAIT)
    assert f"已确认 {short_id}" in replies(sim)[0]
    past_second_step()
    assert leads(sim) == []
    assert "escalation stopped rule=disk" in daemon.log() and "why=ack" in daemon.log()
    metrics = scrape_metrics(daemon)
    assert metric_value(metrics, "escalations_stopped_total", why="ack") == 1


def test_the_resolution_stops_the_next_step(sim: Simulator, daemon: Daemon) -> None:
    fired_at, short_id = fire(daemon, sim)
    first_step(sim, fired_at, short_id)
    resolved = am_alert_payload("DiskFull", status="resolved")
    assert daemon.post("/am", resolved).json()["messages"] == 1
    past_second_step()
    assert leads(sim) == []
    metrics = scrape_metrics(daemon)
    assert metric_value(metrics, "escalations_stopped_total", why="resolve") == 1


def test_a_restart_in_between_continues_without_repeating_a_step(
    sim: Simulator, daemon: Daemon, tmp_path: Path
) -> None:
    fired_at, short_id = fire(daemon, sim)
    first_step(sim, fired_at, short_id)
    daemon.stop()
    again = Daemon(daemon_config(sim), directory=tmp_path)  # the same state directory
    try:
        wait_until(lambda: leads(sim), timeout=WAIT)
        past_second_step()
        assert len(notices(sim)) == 1  # the first step was not sent again
        assert len(leads(sim)) == 1
    finally:
        again.stop()


def test_replicas_sharing_a_database_send_each_step_once(sim: Simulator, pg_url: str) -> None:
    """Three daemons on one PostgreSQL (tests/pgcluster.py; skipped without it): the alert
    posted to one, every step sent once, by whichever replica claimed it."""
    sim.control("reset")
    config = {**daemon_config(sim), "state": {"url": pg_url}}
    replicas: list[Daemon] = []
    try:
        for _ in range(3):
            replicas.append(Daemon(config))
        fired_at, short_id = fire(replicas[1], sim)
        first_step(sim, fired_at, short_id)
        wait_until(lambda: leads(sim), timeout=WAIT)
        time.sleep(3.0)  # a few more rounds of every replica
        assert len(notices(sim)) == 1 and len(leads(sim)) == 1
        sent = sum(log.count("escalation step rule=disk") for log in (r.log() for r in replicas))
        assert sent == 2
    finally:
        for replica in replicas:
            replica.stop()
