"""End to end with a real Prometheus Alertmanager: AM -> webhook -> bridge -> DingTalk simulator.

Alertmanager (Debian's `prometheus-alertmanager`, 0.25) runs as a subprocess with clustering off
and a webhook receiver pointing at the bridge's /alertmanager input; the bridge sends to the
simulator's signed robot (secret + keyword "告警"). An alert POSTed to Alertmanager's API must
come out as a firing (告警) markdown message, and the same alert with endsAt = now as a resolved
(恢复) one.

Without the binary the test is skipped locally and fails in CI (CI=true), where .ci/run installs it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.harness import (
    Daemon,
    Process,
    PrometheusServer,
    Simulator,
    bridge_cli,
    required_tool,
    wait_until,
)

ALERTMANAGER_BIN = "prometheus-alertmanager"
ROBOT_TOKEN = "tok-signed"
ROBOT_SECRET = "SECtest-signing-secret"
KEYWORD = "告警"
ALERTNAME = "E2EDiskFull"
SUMMARY = "Disk almost full on e2e-host"
DESCRIPTION = "/var is 97% full"
WAIT = 20.0  # seconds; every wait below is bounded by this (or less)


class Alertmanager(PrometheusServer):
    """A real Alertmanager on 127.0.0.1 (no cluster), configured from `config`, in `directory`."""

    def __init__(self, binary: str, config: dict[str, Any], directory: Path) -> None:
        (directory / "data").mkdir()
        flags = [f"--storage.path={directory / 'data'}", "--cluster.listen-address="]
        super().__init__(binary, config, directory, [*flags, "--log.level=debug"])

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        response = requests.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=5)
        assert response.status_code == 200, f"{response.status_code} {response.text}"


@pytest.fixture
def alertmanager_binary() -> str:
    return required_tool(ALERTMANAGER_BIN, "prometheus-alertmanager")


@pytest.fixture
def daemon(simulator: Simulator) -> Iterator[Daemon]:
    bridge = Daemon(
        {
            "targets": {
                "ops": {
                    "type": "robot",
                    "webhook": simulator.robot_url(ROBOT_TOKEN),
                    "secret": ROBOT_SECRET,
                    "keywords": [KEYWORD],
                    "timeout": "5s",
                }
            },
            "inputs": {"am": {"type": "alertmanager", "path": "/alertmanager"}},
            "rules": [{"name": "everything", "targets": ["ops"], "msgtype": "markdown"}],
        }
    )
    try:
        yield bridge
    finally:
        bridge.stop()
        _close_log(bridge)
        _close_log(simulator)  # the subprocess keeps its own descriptor; log() reads by name


def _close_log(process: Process) -> None:
    """Close the parent's handle on a harness process's log file.

    tests.harness.Process never closes it; when a Process is freed by the cycle collector the
    handle raises ResourceWarning, which `filterwarnings = error` turns into a failed session.
    """
    handle = getattr(process, "_log", None)
    if handle is not None:
        handle.close()


@pytest.fixture
def alertmanager(
    alertmanager_binary: str, daemon: Daemon, tmp_path: Path
) -> Iterator[Alertmanager]:
    config = {
        "route": {
            "receiver": "bridge",
            "group_by": ["alertname"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "bridge",
                "webhook_configs": [{"url": f"{daemon.url}/alertmanager", "send_resolved": True}],
            }
        ],
    }
    am = Alertmanager(alertmanager_binary, config, tmp_path)
    try:
        wait_until(am.ready, timeout=WAIT, interval=0.1)
        yield am
    finally:
        am.stop()


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _alert(instance: str, starts_at: datetime, ends_at: datetime | None = None) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "labels": {"alertname": ALERTNAME, "severity": "critical", "instance": instance},
        "annotations": {"summary": SUMMARY, "description": DESCRIPTION},
        "startsAt": _rfc3339(starts_at),
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=disk_used",
    }
    if ends_at is not None:
        alert["endsAt"] = _rfc3339(ends_at)
    return alert


def _diagnostics(simulator: Simulator, daemon: Daemon, am: Alertmanager) -> str:
    try:
        seen = simulator.requests_seen()
    except requests.RequestException as exc:
        seen = [{"error": str(exc)}]
    return (
        f"\n--- simulator requests ---\n{seen}"
        f"\n--- bridge log ---\n{daemon.log()}"
        f"\n--- alertmanager log ---\n{am.log()}"
    )


def _wait_for_message(
    status: str, simulator: Simulator, daemon: Daemon, am: Alertmanager
) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for message in simulator.messages(token=ROBOT_TOKEN):
            if status in message["title"] and ALERTNAME in message["title"]:
                return message
        return None

    try:
        message: dict[str, Any] = wait_until(found, timeout=WAIT, interval=0.1)
    except AssertionError:
        raise AssertionError(
            f"no {status} message for {ALERTNAME} reached the simulator within {WAIT}s"
            + _diagnostics(simulator, daemon, am)
        ) from None
    return message


def test_real_alertmanager_firing_then_resolved(
    alertmanager_binary: str, simulator: Simulator, daemon: Daemon, alertmanager: Alertmanager
) -> None:
    instance = f"e2e-{uuid.uuid4().hex[:8]}:9100"
    started = datetime.now(UTC)

    alertmanager.post_alerts([_alert(instance, started)])
    # The bundled templates speak Chinese by default: 告警 (firing), 恢复 (resolved).
    firing = _wait_for_message("[告警]", simulator, daemon, alertmanager)
    context = _diagnostics(simulator, daemon, alertmanager)
    assert firing["msgtype"] == "markdown", context
    assert "恢复" not in firing["title"], context
    for expected in ("告警", ALERTNAME, SUMMARY, DESCRIPTION, instance):
        assert expected in firing["text"], f"{expected!r} not in {firing['text']!r}{context}"
    # Delivered by the signed robot: the signature was valid and the keyword present.
    assert KEYWORD in firing["title"] + firing["text"], context

    alertmanager.post_alerts([_alert(instance, started, ends_at=datetime.now(UTC))])
    resolved = _wait_for_message("[恢复]", simulator, daemon, alertmanager)
    context = _diagnostics(simulator, daemon, alertmanager)
    assert resolved["msgtype"] == "markdown", context
    for expected in ("恢复", ALERTNAME, SUMMARY, instance):
        assert expected in resolved["text"], f"{expected!r} not in {resolved['text']!r}{context}"
    assert resolved["index"] > firing["index"], context

    # Every robot call was accepted: no signature, keyword or shape rejection on the way.
    robot = simulator.stats()["robots"][ROBOT_TOKEN]
    assert robot["rejected"] == {}, f"{robot}{context}"
    assert robot["delivered"] >= 2, f"{robot}{context}"


def test_a_silence_from_the_chat_is_created_and_expired_in_alertmanager(
    alertmanager_binary: str, simulator: Simulator, tmp_path: Path
) -> None:
    from tests.test_e2e_chat import sign

    am = Alertmanager(
        alertmanager_binary,
        {"route": {"receiver": "nobody"}, "receivers": [{"name": "nobody"}]},
        tmp_path,
    )
    bridge: Daemon | None = None
    (tmp_path / "bridge").mkdir()
    try:
        wait_until(am.ready, timeout=WAIT, interval=0.1)
        bridge = Daemon(
            {
                "alertmanager": {"url": am.url},
                "targets": {"ops": {"type": "robot", "webhook": simulator.robot_url("tok-plain")}},
                "inputs": {
                    "chat": {
                        "type": "dingtalk_robot",
                        "path": "/robot",
                        "app_secret": "chat-secret",
                        "allow": {"staff_ids": ["oncall-1"]},
                    }
                },
                "rules": [{"name": "all", "targets": ["ops"]}],
            },
            directory=tmp_path / "bridge",
        )

        url = f"{bridge.url}/robot"

        def say(text: str) -> str:
            ts = str(int(datetime.now(UTC).timestamp() * 1000))
            answer = requests.post(
                url,
                json={
                    "msgtype": "text",
                    "text": {"content": f" {text}"},
                    "senderStaffId": "oncall-1",
                    "senderNick": "Oncall",
                },
                headers={"timestamp": ts, "sign": sign(ts, "chat-secret")},
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
            content: str = answer.json()["text"]["content"]
            return content

        # The answers in the config's language (zh-CN, the default).
        reply = say("silence alertname=DiskFull instance=~db-.* 2h disk swap")
        assert "已同步到 Alertmanager（" in reply, reply + bridge.log()
        am_id = reply.split("已同步到 Alertmanager（")[1].split("）")[0]
        silences = requests.get(f"{am.url}/api/v2/silences", timeout=5).json()
        [held] = [s for s in silences if s["id"] == am_id]
        assert held["status"]["state"] == "active"
        assert held["createdBy"] == "Oncall" and held["comment"] == "disk swap"
        assert sorted((m["name"], m["value"], m["isRegex"]) for m in held["matchers"]) == [
            ("alertname", "DiskFull", False),
            ("instance", "db-.*", True),
        ]
        bridge_id = reply.split("，ID ")[1].split("，")[0]
        reply = say(f"expire {bridge_id}")
        assert f"Alertmanager 中也已解除（{am_id}）" in reply, reply
        expired = requests.get(f"{am.url}/api/v2/silence/{am_id}", timeout=5).json()
        assert expired["status"]["state"] == "expired"
    finally:
        if bridge is not None:
            bridge.stop()
            _close_log(bridge)
        am.stop()


def test_a_silence_from_the_command_line_goes_through_the_same_desk_as_the_chat(
    alertmanager_binary: str, tmp_path: Path
) -> None:
    """`silence add` / `silence expire` mirror to Alertmanager exactly as the chat commands do:
    both call the desk (app/desk.py)."""
    am = Alertmanager(
        alertmanager_binary,
        {"route": {"receiver": "nobody"}, "receivers": [{"name": "nobody"}]},
        tmp_path,
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path / "state"),
                "alertmanager": {"url": am.url},
                "targets": {
                    "ops": {
                        "type": "robot",
                        "webhook": "http://127.0.0.1:9/robot/send?access_token=t",
                    }
                },
                "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
                "rules": [{"name": "all", "targets": ["ops"]}],
            }
        ),
        "utf-8",
    )
    try:
        wait_until(am.ready, timeout=WAIT, interval=0.1)
        added = bridge_cli(
            "silence", "add", "-c", str(config), "--match", "alertname=DiskFull",
            "--for", "2h", "--comment", "disk swap", "--author", "alice",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert "Also in Alertmanager (" in added.stdout, added.stdout + added.stderr
        am_id = added.stdout.split("Also in Alertmanager (")[1].split(")")[0]
        [held] = [
            s
            for s in requests.get(f"{am.url}/api/v2/silences", timeout=5).json()
            if s["id"] == am_id
        ]
        assert held["status"]["state"] == "active"
        assert held["createdBy"] == "alice" and held["comment"] == "disk swap"
        bridge_id = added.stdout.split()[1]  # "silence <id> until ...: <matchers>..."
        expired = bridge_cli("silence", "expire", "-c", str(config), bridge_id)
        assert expired.returncode == 0, expired.stderr
        assert f"Expired in Alertmanager too ({am_id})" in expired.stdout, expired.stdout
        state = requests.get(f"{am.url}/api/v2/silence/{am_id}", timeout=5).json()
        assert state["status"]["state"] == "expired"
    finally:
        am.stop()
