"""End to end: a notification delivered twice (two Alertmanager peers, or two URLs) reaches the
chat once; a reminder after the input's dedup_window goes through; `dedup_window: 0` lets every
copy through. The real daemon and the simulator, as processes.

The copies are what a second peer sends: another receiver name and externalURL, the alerts in
another order, an annotation from a later evaluation (see bridge/pipeline/duplicates.py)."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import (
    Daemon,
    Simulator,
    am_alert_payload,
    metric_value,
    scrape_metrics,
    wait_until,
)

SHORT_WINDOW = 2.0  # seconds: the `short` input's window, waited out once below


@pytest.fixture
def daemon(sim: Simulator) -> Iterator[Daemon]:
    bridge = Daemon(
        {
            "targets": {"ops": {"type": "robot", "webhook": sim.robot_url("tok-a")}},
            "inputs": {
                "am": {"type": "alertmanager", "path": "/am"},  # the default window (1m)
                "short": {"type": "alertmanager", "path": "/short", "dedup_window": "2s"},
                "off": {"type": "alertmanager", "path": "/off", "dedup_window": 0},
            },
            "rules": [{"name": "all", "targets": ["ops"], "msgtype": "markdown"}],
        }
    )
    try:
        yield bridge
    finally:
        bridge.stop()


def notification(alertname: str) -> dict[str, Any]:
    """A group of two alerts, as the first peer sends it."""
    body = am_alert_payload(alertname, instance="host-1:9100")
    second = copy.deepcopy(body["alerts"][0])
    second["labels"]["instance"] = "host-2:9100"
    second["fingerprint"] = f"{second['fingerprint']}-2"
    body["alerts"].append(second)
    del body["commonLabels"]["instance"]
    return body


def peer_copy(body: dict[str, Any]) -> dict[str, Any]:
    other = copy.deepcopy(body)
    other.update(receiver="bridge-peer-b", externalURL="http://alertmanager-b:9093")
    other["alerts"].reverse()
    other["alerts"][0]["annotations"]["description"] = "/ is 96% full"
    return other


def post(daemon: Daemon, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = daemon.post(path, body)
    assert response.status_code == 200, response.text  # a duplicate is accepted too
    answer: dict[str, Any] = response.json()
    return answer


def told(sim: Simulator, alertname: str) -> int:
    return sum(alertname in m["text"] for m in sim.messages(token="tok-a"))


def pending(daemon: Daemon) -> float:
    return metric_value(scrape_metrics(daemon), "outbox_pending", target="ops")


def settled(sim: Simulator, daemon: Daemon, alertname: str, expected: int) -> int:
    """How many messages about `alertname` reached the chat, once the outbox is empty (so a
    second message, if one was queued, has been sent)."""
    wait_until(lambda: told(sim, alertname) >= expected, timeout=15)
    wait_until(lambda: pending(daemon) <= 0, timeout=15)  # -1: no series, nothing pending
    return told(sim, alertname)


def test_a_peers_copy_reaches_the_chat_once(daemon: Daemon, sim: Simulator) -> None:
    first = notification("HaCopy")
    assert post(daemon, "/am", first)["messages"] == 1
    second = post(daemon, "/am", peer_copy(first))
    assert (second["messages"], second["duplicate_notifications"]) == (0, 1)
    assert second["status"] == "accepted"
    assert settled(sim, daemon, "HaCopy", 1) == 1
    metrics = scrape_metrics(daemon)
    assert metric_value(metrics, "events_duplicate_total", input="am") == 1
    assert metric_value(metrics, "events_received_total", input="am") == 2
    assert "duplicate notification" in daemon.log()


def test_after_the_window_a_reminder_goes_through(daemon: Daemon, sim: Simulator) -> None:
    first = notification("HaReminder")
    assert post(daemon, "/short", first)["messages"] == 1
    taken = time.time()
    assert post(daemon, "/short", peer_copy(first))["duplicate_notifications"] == 1
    time.sleep(max(0.0, taken + SHORT_WINDOW + 0.2 - time.time()))  # the window is over
    reminder = post(daemon, "/short", first)
    assert (reminder["messages"], reminder["duplicate_notifications"]) == (1, 0)
    assert settled(sim, daemon, "HaReminder", 2) == 2


def test_without_a_window_every_copy_goes_through(daemon: Daemon, sim: Simulator) -> None:
    first = notification("HaOff")
    assert post(daemon, "/off", first)["messages"] == 1
    second = post(daemon, "/off", peer_copy(first))
    assert (second["messages"], second["duplicate_notifications"]) == (1, 0)
    assert settled(sim, daemon, "HaOff", 2) == 2
