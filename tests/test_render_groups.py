"""Big and mixed groups: the bundled templates name every alert (in numbered parts when long),
and a storm digest's lines identify each alert. Golden files show what the chat shows."""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.config.model import Config, Rule
from bridge.delivery.digest import Item, build_digest
from bridge.dingtalk.robot import ROBOT_MAX_BYTES, robot_bodies
from bridge.dingtalk.sizing import encode
from bridge.inputs.alertmanager import parse_notification
from bridge.model import Event, Message
from bridge.pipeline.render import fallback_message, queued_title, render
from tests.harness import compile_yaml, fixture_json
from tests.test_render import CONFIG, CONFIG_EN, NOW, assert_golden

HOSTS = 300


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    config: Config = compile_yaml(tmp_path_factory.mktemp("groups"), CONFIG_EN)
    return config


def _rule(config: Config, name: str) -> Rule:
    return next(r for r in config.rules if r.name == name)


def big_notification(hosts: int = HOSTS) -> dict[str, Any]:
    """One Alertmanager notification of `hosts` DiskFull alerts, one per instance, each with its
    own summary (so no common summary hides them), built from the real fixture."""
    payload = fixture_json("firing.json")
    template = payload["alerts"][0]
    alerts = []
    for i in range(1, hosts + 1):
        alert = copy.deepcopy(template)
        alert["labels"]["instance"] = f"host-{i:03d}:9100"
        alert["annotations"]["summary"] = f"Disk almost full on host-{i:03d}"
        alert["annotations"]["description"] = f"/ is {90 + i % 10}% full"
        alert["fingerprint"] = f"{i:016x}"
        alerts.append(alert)
    payload["alerts"] = alerts
    payload["commonLabels"] = {"alertname": "DiskFull", "job": "node", "severity": "warning"}
    payload["commonAnnotations"] = {}
    return payload


def _event(config: Config, payload: dict[str, Any]) -> Event:
    return parse_notification(payload, config.http_inputs()["am"], NOW)[0]


def _part_title(body: dict[str, Any]) -> str:
    return json.dumps(body.get("markdown", {}).get("title", "(text: none)"), ensure_ascii=False)


def _part_text(body: dict[str, Any]) -> str:
    return str(body["markdown"]["text"] if "markdown" in body else body["text"]["content"])


@pytest.mark.parametrize(("rule", "suffix"), [("am-md", "md"), ("am-text", "txt")])
def test_300_alerts_are_all_named_in_numbered_parts(config: Config, rule: str, suffix: str) -> None:
    rendered = render(_rule(config, rule), _event(config, big_notification()), NOW)
    assert rendered.error is None
    message = rendered.message
    assert "more" not in message.text.split("more (common labels", 1)[0]  # no "… and N more"
    assert_golden(f"en/am-300.{suffix}", message.title, message.text)

    bodies = robot_bodies(message)
    assert len(bodies) > 1, "300 alerts exceed one robot message"
    shown = "\n\n".join(
        f"--- body {i} of {len(bodies)}: {len(encode(b))} bytes, title {_part_title(b)}\n"
        + _part_text(b)
        for i, b in enumerate(bodies, start=1)
    )
    assert_golden(f"en/am-300-parts.{suffix}", message.title, shown)
    texts = [_part_text(b) for b in bodies]
    for i, (body, text) in enumerate(zip(bodies, texts, strict=True), start=1):
        assert len(encode(body)) <= ROBOT_MAX_BYTES
        if i > 1:  # a later part says what it continues
            assert text.startswith(f"({i}/{len(bodies)}) {message.title}")
        if i < len(bodies):
            assert text.rstrip().endswith(f"({i}/{len(bodies)}, continued in part {i + 1})")
    everything = "\n".join(texts)
    for i in range(1, HOSTS + 1):  # every host, each in exactly one part
        host = f"host-{i:03d}:9100"
        assert sum(host in t for t in texts) == 1, host
        assert everything.count(host) >= 1


def test_parts_cut_between_alerts_not_inside_one(config: Config) -> None:
    message = render(_rule(config, "am-md"), _event(config, big_notification()), NOW).message
    for text in (_part_text(b) for b in robot_bodies(message)):
        # Every compact line whole: it starts with its marker and ends with its time.
        for line in text.split("\n"):
            if "instance=host-" in line and line.startswith("- "):
                assert re.fullmatch(r"- 🔴 instance=host-\d{3}:9100 · .+ · since .+", line), line


def test_mixed_alertnames_are_named_in_title_body_and_compact_lines(config: Config) -> None:
    payload = big_notification(30)
    for i, alert in enumerate(payload["alerts"]):
        alert["labels"]["alertname"] = "HighCPU" if i % 2 else "DiskFull"
    payload["commonLabels"] = {"job": "node", "severity": "warning"}
    payload["groupLabels"] = {}
    event = _event(config, payload)
    md = render(_rule(config, "am-md"), event, NOW).message
    assert md.title == "[FIRING ×30] DiskFull, HighCPU"
    assert md.text.startswith("### 🔥 FIRING · DiskFull, HighCPU")
    assert "- 🔴 **HighCPU** instance=host-030:9100" in md.text
    text = render(_rule(config, "am-text"), event, NOW).message
    assert "● HighCPU instance=host-030:9100" in text.text


def test_fallback_lists_every_alert(config: Config) -> None:
    event = _event(config, big_notification())
    message = fallback_message("r", "markdown", _rule(config, "am-md").mention, event)
    for i in range(1, HOSTS + 1):
        assert f"instance=host-{i:03d}:9100" in message.text
    assert message.title == "[FIRING ×300] DiskFull"


def _mixed_group() -> dict[str, Any]:
    """Two alertnames in one notification: `alertname` is not a common label."""
    payload = fixture_json("firing.json")
    disk = payload["alerts"][0]
    cpu = copy.deepcopy(disk)
    cpu["labels"].update(alertname="HighCPU", instance="host-7:9100")
    cpu["annotations"] = {"summary": "CPU busy"}
    cpu["fingerprint"] = "00000000000000c7"
    payload["alerts"] = [disk, cpu]
    payload["commonLabels"] = {"job": "node", "severity": "warning"}
    payload["groupLabels"] = {"job": "node"}
    return payload


def test_digest_lines_identify_each_alert(config: Config) -> None:
    """A digest over notifications of several alertnames: each line names its alert(s), the
    labels that tell them apart and the count; none reads just "[FIRING] am"."""
    rule = _rule(config, "am-md")
    resolved = fixture_json("resolved.json")
    resolved["alerts"][0]["labels"]["instance"] = "host-5:9100"
    payloads = [_mixed_group(), fixture_json("firing.json"), resolved, big_notification(12)]
    events = [_event(config, p) for p in payloads]
    head = Message("markdown", "unused", "")
    items = [Item(queued_title(rule, head, e, NOW), e.status, rule.mention) for e in events]
    titles = [item.title for item in items]
    assert titles[0] == (
        "[FIRING ×2] DiskFull, HighCPU · 2 alerts: DiskFull instance=host-3:9100;"
        " HighCPU instance=host-7:9100"
    )
    assert titles[1] == "[FIRING] DiskFull · instance=host-3:9100, job=node, severity=warning"
    assert titles[2].startswith("[RESOLVED] DiskFull · instance=host-5:9100")
    assert titles[3].startswith("[FIRING ×12] DiskFull · 12 alerts: instance=host-001:9100;")
    assert all(f"host-{i:03d}:9100" in titles[3] for i in range(1, 13))

    def body_of(message: Message) -> dict[str, Any]:
        return robot_bodies(message, limit=sys.maxsize)[0]

    message, count = build_digest(items, len(items), body_of, ROBOT_MAX_BYTES, "en")
    assert count == len(items)
    assert_golden("en/digest-mixed.md", message.title, message.text)


def test_digest_speaks_the_configs_locale(tmp_path: Path) -> None:
    """Chinese by default: the digest's title, its why, and each line's status word."""
    config = compile_yaml(tmp_path, CONFIG)
    rule = _rule(config, "am-md")
    resolved = fixture_json("resolved.json")
    events = [_event(config, p) for p in (_mixed_group(), resolved, big_notification(3))]
    head = Message("markdown", "unused", "")
    items = [Item(queued_title(rule, head, e, NOW), e.status, rule.mention) for e in events]

    def body_of(message: Message) -> dict[str, Any]:
        return robot_bodies(message, limit=sys.maxsize)[0]

    message, count = build_digest(items, 40, body_of, ROBOT_MAX_BYTES, config.locale)
    assert count == 3 and config.locale == "zh-CN"
    assert message.title == "3 条告警（2 条告警中，1 条已恢复）"
    assert_golden("zh-CN/digest-mixed.md", message.title, message.text)


def test_digest_of_a_group_without_alertname_names_the_input(tmp_path: Path) -> None:
    """Webhook events without an alertname: the title falls back to the input's name, and the
    labels still identify each event."""
    config = compile_yaml(tmp_path, CONFIG_EN)
    from bridge.inputs.webhook import parse_webhook

    spec = config.http_inputs()["hook"]
    event = parse_webhook({"check": "", "service": "pay", "message": "m", "ok": False}, spec, NOW)[
        0
    ]
    line = queued_title(_rule(config, "hook-md"), Message("markdown", "", ""), event, NOW)
    assert "service=pay" in line


def test_a_digest_line_is_one_line_whatever_the_labels_hold(config: Config) -> None:
    payload = _mixed_group()
    payload["alerts"][1]["labels"]["instance"] = "host-7\n- forged line"
    event = _event(config, payload)
    line = queued_title(_rule(config, "am-md"), Message("markdown", "", ""), event, NOW)
    assert "\n" not in line and "instance=host-7 - forged line" in line
