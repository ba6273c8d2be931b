"""Who gets pinged, end to end: the real daemon, the simulator as DingTalk.

An alert whose `owner` label names alice pings alice's mobile, highlighted (the @mobile in the
text and in at.atMobiles); its resolution pings nobody; a work notice reaches her directly; a
target with `mention_line: true` follows the markdown with a text line carrying the mentions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Daemon, Simulator, am_alert_payload, wait_until

SECRET = "app-secret-value"
ALICE_MOBILE = "13812345678"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    sim = Simulator(
        spec={
            "robots": {
                "tok-ops": {"rate_per_minute": 0},
                "tok-line": {"rate_per_minute": 0, "keywords": ["告警"]},
                "tok-reload": {"rate_per_minute": 0},
            },
            "apps": {"app-key": {"app_secret": SECRET, "agent_id": 7, "users": ["u-alice"]}},
        }
    )
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def daemon(sim: Simulator) -> Iterator[Daemon]:
    config: dict[str, Any] = {
        "people": {
            "alice": {"mobile": ALICE_MOBILE, "userid": "u-alice", "name": "Alice"},
            "bob": {"userid": "u-bob"},
            "groups": {"dba": ["alice", "bob"]},
        },
        "targets": {
            "ops": {"type": "robot", "webhook": sim.robot_url("tok-ops")},
            "line": {
                "type": "robot",
                "webhook": sim.robot_url("tok-line"),
                "keywords": ["告警"],
                "mention_line": True,
            },
            "owner": {
                "type": "work_notice",
                "app_key": "app-key",
                "app_secret": SECRET,
                "agent_id": 7,
                "api_base": sim.url,
                "recipients": ["{{ labels.owner }}"],
            },
        },
        "inputs": {"am": {"type": "alertmanager", "path": "/alertmanager"}},
        "rules": [
            {
                "name": "to-owner",
                "match": {"route": "owner"},
                "targets": ["ops", "owner"],
                "msgtype": "markdown",
                "mention": ["{{ labels.owner }}"],
            },
            {
                "name": "to-line",
                "match": {"route": "line"},
                "targets": ["line"],
                "msgtype": "markdown",
                "mention": ["{{ labels.owner }}"],
            },
        ],
    }
    daemon = Daemon(config)
    yield daemon
    daemon.stop()


def test_the_owner_label_pings_alices_mobile_highlighted_and_resolved_pings_nobody(
    daemon: Daemon, sim: Simulator
) -> None:
    firing = am_alert_payload("DiskFull", route="owner", owner="alice")
    assert daemon.post("/alertmanager", firing).status_code == 200
    [message] = sim.wait_messages(1, token="tok-ops")
    assert message["body"]["at"]["atMobiles"] == [ALICE_MOBILE]
    assert f"@{ALICE_MOBILE}" in message["body"]["markdown"]["text"]
    assert message["mentions"]["highlighted_mobiles"] == [ALICE_MOBILE]

    # ... and a work notice straight to her.
    [notice] = [m for m in sim.wait_messages(1, token="app-key") if m["kind"] == "work_notice"]
    assert notice["userid_list"] == ["u-alice"]
    assert notice["recipients"] == ["u-alice"]

    resolved = am_alert_payload("DiskFull", status="resolved", route="owner", owner="alice")
    assert daemon.post("/alertmanager", resolved).status_code == 200
    messages = sim.wait_messages(2, token="tok-ops")
    assert messages[1]["body"]["at"]["atMobiles"] == []
    assert messages[1]["mentions"]["highlighted_mobiles"] == []
    assert ALICE_MOBILE not in daemon.log()  # her number is masked in the logs


def test_a_label_naming_nobody_is_logged_and_the_message_still_goes(
    daemon: Daemon, sim: Simulator
) -> None:
    payload = am_alert_payload("NoOwner", route="owner", owner="mallory")
    assert daemon.post("/alertmanager", payload).status_code == 200
    mine = wait_until(
        lambda: [
            m for m in sim.messages(token="tok-ops") if "NoOwner" in m["body"]["markdown"]["text"]
        ]
    )
    assert mine[0]["body"]["at"]["atMobiles"] == []
    assert "mention names nobody in people: 'mallory'" in daemon.log()


def test_mention_line_follows_the_markdown_with_a_text_that_pings(
    daemon: Daemon, sim: Simulator
) -> None:
    payload = am_alert_payload("CpuHigh", route="line", owner="dba")
    assert daemon.post("/alertmanager", payload).status_code == 200
    markdown, line = sim.wait_messages(2, token="tok-line")
    assert markdown["msgtype"] == "markdown" and "CpuHigh" in markdown["body"]["markdown"]["text"]
    assert markdown["body"]["at"]["atMobiles"] == []  # the mentions moved to the line
    assert line["msgtype"] == "text"
    content = line["body"]["text"]["content"]
    assert "\n" not in content and "CpuHigh" in content and "告警" in content
    assert line["mentions"]["highlighted_mobiles"] == [ALICE_MOBILE]
    assert line["mentions"]["highlighted_userids"] == ["u-bob"]


def test_an_edited_people_file_is_live_after_a_reload(sim: Simulator, tmp_path: Path) -> None:
    people = tmp_path / "people.yaml"
    people.write_text('alice: {mobile: "13800000001"}\n', "utf-8")
    config: dict[str, Any] = {
        "people": {"include": "people.yaml"},
        "targets": {"ops": {"type": "robot", "webhook": sim.robot_url("tok-reload")}},
        "inputs": {"am": {"type": "alertmanager", "path": "/alertmanager"}},
        "rules": [{"name": "r", "targets": ["ops"], "mention": ["{{ labels.owner }}"]}],
    }
    daemon = Daemon(config, directory=tmp_path)
    try:
        people.write_text('alice: {mobile: "13800000002"}\n', "utf-8")
        wait_until(lambda: "config reloaded" in daemon.log(), timeout=10)
        payload = am_alert_payload("AfterEdit", owner="alice")
        assert daemon.post("/alertmanager", payload).status_code == 200
        [message] = sim.wait_messages(1, token="tok-reload")
        assert message["body"]["at"]["atMobiles"] == ["13800000002"]
    finally:
        daemon.stop()
