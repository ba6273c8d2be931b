"""Presets end to end: a config whose inputs are one line each, run by the real daemon; the
sources' own samples posted over HTTP as the tools send them arrive in the DingTalk simulator
in the preset's message, in Chinese (the default locale)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.config.presets import presets
from tests.harness import Daemon, Simulator

GITLAB_TOKEN = "gitlab-hook-secret"


def sample(preset: str, name: str) -> bytes:
    [found] = [s.file for s in presets()[preset].samples if s.file.name == name]
    return found.read_bytes()


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    sim = Simulator(spec={"robots": {"tok": {"rate_per_minute": 0}}})
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def daemon(sim: Simulator) -> Iterator[Daemon]:
    config: dict[str, Any] = {
        "targets": {"ops": {"type": "robot", "webhook": sim.robot_url("tok")}},
        "inputs": {
            "kuma": {"preset": "uptime-kuma"},
            "aliyun": {"preset": "aliyun-cloudmonitor"},
            "sky": {"preset": "skywalking"},
            "grafana": {"preset": "grafana"},
            "ci": {"preset": "gitlab", "token": GITLAB_TOKEN},
        },
        # A rule fed by one preset's input takes that preset's title and message.
        "rules": [
            {"name": name, "inputs": [name], "targets": ["ops"]}
            for name in ("kuma", "aliyun", "sky", "grafana", "ci")
        ],
    }
    daemon = Daemon(config)
    yield daemon
    daemon.stop()


def new_messages(sim: Simulator, before: int, count: int) -> list[dict[str, Any]]:
    return sim.wait_messages(before + count, token="tok")[before:]


def test_uptime_kuma_down_arrives_in_its_presets_message(daemon: Daemon, sim: Simulator) -> None:
    before = len(sim.messages(token="tok"))
    answer = daemon.post(
        "/sources/uptime-kuma", data=sample("uptime-kuma", "down.constructed.json")
    )
    assert answer.status_code == 200, answer.text
    [message] = new_messages(sim, before, 1)
    assert message["title"] == "[告警] Order API"
    assert "**\\[Order API\\] \\[🔴 Down\\] connect ECONNREFUSED 10.0.0.5:8080**" in message["text"]
    assert "- 目标: http://10.0.0.5:8080/health" in message["text"]


def test_a_cloudmonitor_form_arrives_with_its_chinese_name(daemon: Daemon, sim: Simulator) -> None:
    before = len(sim.messages(token="tok"))
    form = sample("aliyun-cloudmonitor", "alarm.txt").strip()
    answer = daemon.post(
        "/sources/aliyun-cloudmonitor",
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"},
    )
    assert answer.status_code == 200, answer.text
    [message] = new_messages(sim, before, 1)
    assert message["title"] == "[告警] 基础监控-ECS-内存使用率 · instance-name-****"
    assert "- 当前值: **97.39**" in message["text"]


def test_a_skywalking_array_is_one_message_per_alarm(daemon: Daemon, sim: Simulator) -> None:
    before = len(sim.messages(token="tok"))
    alarms = sample("skywalking", "alarms-v10.3.0.json")
    answer = daemon.post("/sources/skywalking", data=alarms)
    assert answer.status_code == 200, answer.text
    assert answer.json()["events"] == 2
    messages = new_messages(sim, before, 2)
    assert sorted(m["text"].split("- 服务: ")[1].split(" ")[0] for m in messages) == [
        "serviceA",
        "serviceB",
    ]


def test_grafana_arrives_through_its_preset(daemon: Daemon, sim: Simulator) -> None:
    before = len(sim.messages(token="tok"))
    answer = daemon.post("/sources/grafana", data=sample("grafana", "firing.json"))
    assert answer.status_code == 200, answer.text
    [message] = new_messages(sim, before, 1)
    assert message["title"] == "[告警 ×2] High memory usage, High CPU usage"
    assert "数值: **B** = 44.2394, **C** = 1" in message["text"]


def test_gitlab_is_checked_by_its_own_token_header(daemon: Daemon, sim: Simulator) -> None:
    """GitLab sends its secret as X-Gitlab-Token: the preset checks that header, not Bearer."""
    event = json.loads(sample("gitlab", "pipeline-event.json"))
    event["object_attributes"]["status"] = "failed"
    before = len(sim.messages(token="tok"))
    for headers, status in (
        ({}, 401),
        ({"X-Gitlab-Token": "wrong"}, 401),
        ({"Authorization": f"Bearer {GITLAB_TOKEN}"}, 401),
    ):
        answer = daemon.post("/sources/gitlab", event, headers=headers)
        assert answer.status_code == status, (headers, answer.text)
    answer = daemon.post("/sources/gitlab", event, headers={"X-Gitlab-Token": GITLAB_TOKEN})
    assert answer.status_code == 200, answer.text
    [message] = new_messages(sim, before, 1)
    assert message["title"] == "[告警] gitlab-org/gitlab-test master"
    assert (
        "- 流水线: [#3](http://example.com/gitlab-org/gitlab-test/-/pipelines/31) 失败"
        in (message["text"])
    )
    # Fixed: the next success of that ref resolves it.
    event["object_attributes"]["status"] = "success"
    answer = daemon.post("/sources/gitlab", event, headers={"X-Gitlab-Token": GITLAB_TOKEN})
    assert answer.status_code == 200, answer.text
    [fixed] = new_messages(sim, before + 1, 1)
    assert fixed["title"] == "[恢复] gitlab-org/gitlab-test master"
