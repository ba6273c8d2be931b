"""Payload -> Event for each HTTP input, as tables."""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.config.model import Config
from bridge.errors import InputError
from bridge.inputs.alertmanager import parse_notification
from bridge.inputs.webhook import parse_webhook
from tests.harness import compile_yaml, fixture_json

NOW = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
CONFIG = """
targets: {ops: {type: robot, webhook: "http://127.0.0.1:1/robot/send?access_token=t"}}
inputs:
  am: {type: alertmanager, path: /am}
  am-split: {type: alertmanager, path: /split, split: true}
  hook:
    type: webhook
    path: /hook
    labels: {service: "{{ body.app }}", env: "{{ body.env | default('prod') }}"}
    annotations: {summary: "{{ body.msg }}"}
    status: "{{ body.state }}"
    fingerprint: "{{ body.app }}/{{ body.check }}"
  bare: {type: webhook, path: /bare}
rules: [{name: all, targets: [ops]}]
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    loaded: Config = compile_yaml(tmp_path_factory.mktemp("inputs"), CONFIG)
    return loaded


def two_alerts() -> dict[str, Any]:
    payload = fixture_json("firing.json")
    second = copy.deepcopy(payload["alerts"][0])
    second["labels"]["instance"] = "host-4:9100"
    second["fingerprint"] = "2222222222222222"
    second["status"] = "resolved"
    payload["alerts"].append(second)
    return payload


def test_one_event_per_notification_on_common_labels(config: Config) -> None:
    [event] = parse_notification(two_alerts(), config.http_inputs()["am"], NOW)
    assert event.labels == {
        "alertname": "DiskFull",
        "instance": "host-3:9100",
        "job": "node",
        "severity": "warning",
    }
    assert event.status == "firing"
    assert [a.fingerprint for a in event.alerts] == ["75d876fd5278a805", "2222222222222222"]
    assert event.annotations["summary"] == "Disk almost full"
    assert event.received_at == NOW


def test_split_gives_one_event_per_alert(config: Config) -> None:
    events = parse_notification(two_alerts(), config.http_inputs()["am-split"], NOW)
    assert [(e.status, e.labels["instance"], e.fingerprint) for e in events] == [
        ("firing", "host-3:9100", "75d876fd5278a805"),
        ("resolved", "host-4:9100", "2222222222222222"),
    ]
    assert all(len(e.alerts) == 1 for e in events)


def test_group_fingerprint_is_stable_per_group_key(config: Config) -> None:
    a = parse_notification(fixture_json("firing.json"), config.http_inputs()["am"], NOW)[0]
    b = parse_notification(fixture_json("resolved.json"), config.http_inputs()["am"], NOW)[0]
    assert a.fingerprint == b.fingerprint  # same groupKey: the same alert group


def test_webhook_derives_labels_status_and_identity(config: Config) -> None:
    body = {"app": "pay", "msg": "p99 high", "state": "resolved", "check": "latency"}
    [event] = parse_webhook(body, config.http_inputs()["hook"], NOW)
    assert event.labels == {"service": "pay", "env": "prod"}
    assert event.annotations == {"summary": "p99 high"}
    assert event.status == "resolved"
    assert event.payload == body
    other = parse_webhook({**body, "msg": "changed"}, config.http_inputs()["hook"], NOW)[0]
    assert other.fingerprint == event.fingerprint  # the identity template ignores the message


def test_webhook_without_mappings_is_a_firing_event_with_the_body(config: Config) -> None:
    [event] = parse_webhook({"anything": [1, 2]}, config.http_inputs()["bare"], NOW)
    assert (event.status, dict(event.labels), event.payload) == ("firing", {}, {"anything": [1, 2]})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"app": "pay", "msg": "m", "state": "burning", "check": "c"}, "status must come out as"),
        ({"msg": "m", "state": "firing", "check": "c"}, "labels.service"),
        (["not", "an", "object"], "JSON object"),
    ],
)
def test_webhook_refusals_name_the_problem(config: Config, body: Any, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_webhook(body, config.http_inputs()["hook"], NOW)
    assert caught.value.status == 400
    assert message in str(caught.value)


def test_unmatched_events_are_counted_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bridge.app.bridge import Bridge

    config = compile_yaml(
        tmp_path,
        CONFIG.replace(
            "rules: [{name: all, targets: [ops]}]",
            "rules: [{name: none, match: {x: y}, targets: [ops]}]",
        ),
    )
    from bridge.store.sqlite import SqliteStore

    bridge = Bridge(config, store=SqliteStore(tmp_path / "state"))
    spec = config.http_inputs()["bare"]
    with caplog.at_level(logging.INFO, logger="bridge"):
        for _ in range(3):
            accepted = bridge.accept(spec, parse_webhook({"a": 1}, spec, NOW))
            assert (accepted.messages, accepted.unmatched) == (0, 1)
    assert bridge.intake.counters.unmatched == 3
    assert sum("no rule matched" in r.getMessage() for r in caplog.records) == 1
