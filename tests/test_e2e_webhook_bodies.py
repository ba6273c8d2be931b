"""The generic webhook's formats end to end: the real daemon, real HTTP posts of the sources'
sample bodies, and the DingTalk simulator receiving the messages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import FIXTURES, Daemon, Simulator

SOURCES = FIXTURES / "sources"
FORM = "application/x-www-form-urlencoded; charset=UTF-8"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    sim = Simulator(spec={"robots": {"tok": {"rate_per_minute": 0}}})
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def daemon(sim: Simulator) -> Iterator[Daemon]:
    robot = {"type": "robot", "webhook": sim.robot_url("tok")}
    config: dict[str, Any] = {
        "timezone": "Asia/Shanghai",
        "targets": {"ops": robot},
        "inputs": {
            "aliyun": {
                "type": "webhook",
                "path": "/aliyun",
                "format": "form",
                "labels": {
                    "alertname": "{{ body.alertName }}",
                    "instance": "{{ body.instanceName }}",
                },
                "status": "{{ 'resolved' if body.alertState == 'OK' else 'firing' }}",
                "starts_at": "{{ body.timestamp }}",
            },
            "sky": {
                "type": "webhook",
                "path": "/sky",
                "items": "body",
                "labels": {"alertname": "{{ item.ruleName }}", "service": "{{ item.name }}"},
                "annotations": {"summary": "{{ item.alarmMessage }}"},
                "starts_at": "{{ item.startTime }}",
            },
            "sky-grouped": {
                "type": "webhook",
                "path": "/sky-grouped",
                "items": "body",
                "labels": {"alertname": "{{ item.ruleName }}", "service": "{{ item.name }}"},
            },
            "lines": {
                "type": "webhook",
                "path": "/lines",
                "format": "text",
                "labels": {"alertname": "LogLine"},
                "fingerprint": "{{ line }}",
                "annotations": {"summary": "{{ line }}"},
            },
            "plain": {"type": "webhook", "path": "/plain"},
        },
        "rules": [
            {
                "name": "aliyun",
                "inputs": ["aliyun"],
                "targets": ["ops"],
                "msgtype": "markdown",
                "title": "{{ labels.alertname }}",
                "template": "{{ status }} {{ labels.alertname }} on {{ labels.instance }}"
                " since {{ alerts[0].startsAt | localtime }}, {{ body.metricName }}"
                " = {{ body.curValue }}",
            },
            {
                "name": "grouped",
                "inputs": ["sky-grouped"],
                "targets": ["ops"],
                "group_by": ["alertname"],
                "group_wait": "1s",
            },
            {"name": "rest", "targets": ["ops"], "msgtype": "text"},
        ],
    }
    d = Daemon(config)
    yield d
    d.stop()


@pytest.fixture(autouse=True)
def fresh(sim: Simulator) -> None:
    sim.control("reset")


def text_of(message: dict[str, Any]) -> str:
    body = message["body"]
    text: str = body["markdown"]["text"] if "markdown" in body else body["text"]["content"]
    return text


def test_a_cloudmonitor_form_post_names_the_alert(daemon: Daemon, sim: Simulator) -> None:
    raw = (SOURCES / "aliyun-cloudmonitor-alarm.txt").read_bytes()
    response = daemon.post("/aliyun", data=raw, headers={"Content-Type": FORM})
    assert response.status_code == 200, response.text
    assert response.json()["messages"] == 1
    [message] = sim.wait_messages(1)
    assert message["body"]["markdown"]["title"] == "基础监控-ECS-内存使用率"
    # The Chinese name intact, and the epoch seconds shown in the config's zone (UTC+8).
    assert text_of(message) == (
        "firing 基础监控-ECS-内存使用率 on instance-name-****"
        " since 2017-10-16 14:52:40, Host.mem.usedutilization = 97.39"
    )

    ok = raw.replace(b"alertState=ALERT", b"alertState=OK")
    assert daemon.post("/aliyun", data=ok, headers={"Content-Type": FORM}).status_code == 200
    [_, resolved] = sim.wait_messages(2)
    assert text_of(resolved).startswith("resolved 基础监控-ECS-内存使用率")


def test_a_skywalking_array_is_one_message_per_alarm(daemon: Daemon, sim: Simulator) -> None:
    raw = (SOURCES / "skywalking-alarm-webhook-v10.3.0.json").read_bytes()
    response = daemon.post("/sky", data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert (response.json()["events"], response.json()["messages"]) == (2, 2)
    messages = sim.wait_messages(2)
    texts = sorted(text_of(m) for m in messages)
    assert "serviceA" in texts[0] and "alarmMessage xxxx" in texts[0]
    assert "serviceB" in texts[1] and "alarmMessage yyy" in texts[1]


def test_a_skywalking_array_grouped_by_a_rule_is_one_message(
    daemon: Daemon, sim: Simulator
) -> None:
    raw = (SOURCES / "skywalking-alarm-webhook-v10.4.0.json").read_bytes()
    response = daemon.post("/sky-grouped", data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["held_for_grouping"] == 2
    [message] = sim.wait_messages(1)
    text = text_of(message)
    assert "service=serviceA" in text and "service=serviceB" in text


def test_a_text_body_is_one_message_per_line(daemon: Daemon, sim: Simulator) -> None:
    body = "ERROR db.pool connection refused\n\n磁盘 /data 已满\r\nWARN slow query\n"
    response = daemon.post(
        "/lines", data=body.encode(), headers={"Content-Type": "text/plain; charset=utf-8"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["messages"] == 3
    texts = [text_of(m) for m in sim.wait_messages(3)]
    for line in ("ERROR db.pool connection refused", "磁盘 /data 已满", "WARN slow query"):
        assert sum(line in t for t in texts) == 1, texts


@pytest.mark.parametrize(
    ("path", "data", "content_type", "error"),
    [
        ("/aliyun", b'{"alertName": "x"}', "application/json", "reads form bodies"),
        ("/aliyun", b"alertName=%E5%9F", FORM, "is not UTF-8 once decoded"),
        ("/aliyun", b"alertName=50%", FORM, "invalid percent-encoding"),
        ("/plain", b'[{"a": 1}]', "application/json", "set items: body on the input"),
        ("/sky", b'{"a": 1}', "application/json", "items: must give an array"),
        ("/lines", b"ok\n\xff", "text/plain", "not UTF-8 text"),
    ],
)
def test_bad_bodies_get_a_400_that_names_the_problem(
    daemon: Daemon, sim: Simulator, path: str, data: bytes, content_type: str, error: str
) -> None:
    response = daemon.post(path, data=data, headers={"Content-Type": content_type})
    assert response.status_code == 400, response.text
    assert response.json()["reason"] == "bad_request"
    assert error in response.json()["error"]
    assert sim.messages() == []
