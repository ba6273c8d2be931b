"""End to end: Grafana's webhook (the documented sample and a resolved one built from it) POSTed
to the real daemon, with the Authorization header Grafana's contact point sends, arrives in the
DingTalk simulator: one message per notification, or one per alert with `split: true`, firing
and then resolved, with the alerts' values and links."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import FIXTURES, Daemon, Simulator, fixture_json

TOKEN = "grafana-contact-point-token"
SOURCES = FIXTURES / "sources"


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SOURCES / name).read_text("utf-8"))
    return loaded


FIRING = sample("grafana-webhook-firing.json")
RESOLVED = sample("grafana-webhook-resolved.constructed.json")


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    sim = Simulator(spec={"robots": {"tok-group": {}, "tok-split": {}}})
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def daemon(sim: Simulator) -> Iterator[Daemon]:
    retry = {"initial": 0.2, "max": 1}
    config: dict[str, Any] = {
        "locale": "en",  # the assertions read the English words
        "targets": {
            "group": {"type": "robot", "webhook": sim.robot_url("tok-group"), "retry": retry},
            "split": {"type": "robot", "webhook": sim.robot_url("tok-split"), "retry": retry},
        },
        "inputs": {
            "grafana": {"type": "grafana", "path": "/grafana", "token": TOKEN},
            "grafana-split": {"type": "grafana", "path": "/grafana/split", "split": True},
        },
        "rules": [
            {"name": "group", "inputs": ["grafana"], "targets": ["group"]},
            {"name": "split", "inputs": ["grafana-split"], "targets": ["split"]},
        ],
    }
    daemon = Daemon(config)
    yield daemon
    daemon.stop()


def test_a_notification_and_its_resolve_arrive_with_values_and_links(
    daemon: Daemon, sim: Simulator
) -> None:
    answer = daemon.post("/grafana", FIRING, token=TOKEN)
    assert answer.status_code == 200, answer.text
    assert answer.json()["messages"] == 1
    [firing] = sim.wait_messages(1, token="tok-group")
    assert firing["msgtype"] == "markdown"
    assert firing["title"] == "[FIRING ×2] High memory usage, High CPU usage"
    for expected in (
        "🔴 **This alert was triggered for zone us-1**",
        "🔴 **This alert was triggered for zone eu-1**",
        "Values: **B** = 44.2394, **C** = 1",
        "[Alert rule](https://play.grafana.org/alerting/1afz29v7z/edit)",
        f"[Silence]({FIRING['alerts'][0]['silenceURL']})",
        "[Runbook](https://myrunbook.com/runbook/1234)",
    ):
        assert expected in firing["text"], f"{expected!r} not in {firing['text']!r}"

    answer = daemon.post("/grafana", RESOLVED, token=TOKEN)
    assert answer.status_code == 200, answer.text
    resolved = sim.wait_messages(2, token="tok-group")[1]
    assert resolved["title"] == "[RESOLVED] High memory usage"
    assert "🟢 **This alert was triggered for zone us-1**" in resolved["text"]
    assert "Values: **B** = 44.2394, **C** = 0" in resolved["text"]
    assert "(lasted 10m)" in resolved["text"]


def test_split_sends_one_message_per_alert(daemon: Daemon, sim: Simulator) -> None:
    answer = daemon.post("/grafana/split", FIRING)
    assert answer.status_code == 200, answer.text
    assert answer.json()["events"] == 2
    messages = sim.wait_messages(2, token="tok-split")
    assert sorted(m["title"] for m in messages) == [
        "[FIRING] High CPU usage",
        "[FIRING] High memory usage",
    ]
    for message in messages:
        assert message["text"].count("🔴") == 1  # one alert each

    assert daemon.post("/grafana/split", RESOLVED).status_code == 200
    resolved = sim.wait_messages(3, token="tok-split")[2]
    assert resolved["title"] == "[RESOLVED] High memory usage"


@pytest.mark.parametrize(
    ("body", "token", "status", "says"),
    [
        (FIRING, None, 401, "missing bearer token"),
        (FIRING, "wrong", 401, "wrong bearer token"),
        (fixture_json("firing.json"), TOKEN, 400, "an input of type: alertmanager takes it"),
        ({**FIRING, "alerts": "none"}, TOKEN, 400, "expected a list of alerts"),
    ],
)
def test_what_is_not_grafanas_notification_is_refused(
    daemon: Daemon,
    sim: Simulator,
    body: dict[str, Any],
    token: str | None,
    status: int,
    says: str,
) -> None:
    before = len(sim.messages(token="tok-group"))
    answer = daemon.post("/grafana", body, token=token)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]
    assert len(sim.messages(token="tok-group")) == before


def test_grafanas_webhook_at_an_alertmanager_input_is_told_to_use_type_grafana(
    sim: Simulator,
) -> None:
    daemon = Daemon(
        {
            "targets": {"group": {"type": "robot", "webhook": sim.robot_url("tok-group")}},
            "inputs": {"am": {"type": "alertmanager", "path": "/alertmanager"}},
            "rules": [{"name": "all", "targets": ["group"]}],
        }
    )
    try:
        answer = daemon.post("/alertmanager", FIRING)
        assert answer.status_code == 400
        assert "an input of type: grafana takes it" in answer.json()["error"]
    finally:
        daemon.stop()
