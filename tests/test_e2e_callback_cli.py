"""`dingtalk-bridge callback ...` against the simulator, which behaves like DingTalk: registering
sends the check_url event to the URL at once and fails (71009) unless the running daemon answers
with the encrypted success; a registered app's events are then pushed to the daemon and routed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness import Daemon, Simulator, bridge_cli, wait_until

TOKEN = "cb-token"
AES_KEY = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7"
CORP = "dingtestcorp"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    sim = Simulator(
        spec={
            "robots": {"tok-cb": {"rate_per_minute": 0}},
            "apps": {"app-key": {"app_secret": "app-secret", "agent_id": 7, "corp_id": CORP}},
        }
    )
    yield sim
    sim.stop()


@pytest.fixture
def daemon(sim: Simulator, tmp_path: Path) -> Iterator[Daemon]:
    config = {
        "targets": {
            "ops": {
                "type": "robot",
                "webhook": sim.robot_url("tok-cb"),
                "rate_limit": {"messages": 0},
            },
            "app": {
                "type": "work_notice",
                "app_key": "app-key",
                "app_secret": "app-secret",
                "agent_id": 7,
                "userids": ["u1"],
                "api_base": sim.url,
            },
        },
        "inputs": {
            "events": {
                "type": "dingtalk_callback",
                "path": "/dingtalk/events",
                "token": TOKEN,
                "aes_key": AES_KEY,
                "owner_key": CORP,
            }
        },
        "rules": [{"name": "joins", "match": {"EventType": "user_add_org"}, "targets": ["ops"]}],
    }
    daemon = Daemon(config, directory=tmp_path)
    yield daemon
    daemon.stop()


def cli(daemon: Daemon, *args: str) -> tuple[int, str]:
    done = bridge_cli("callback", *args, "-c", str(daemon.config_path), timeout=30)
    return done.returncode, done.stdout + done.stderr


def push(sim: Simulator, event: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = sim.control("callbacks/push", {"app_key": "app-key", "event": event})
    return answer


def test_register_show_push_failed_delete(sim: Simulator, daemon: Daemon) -> None:
    url = f"{daemon.url}/dingtalk/events"
    code, out = cli(daemon, "show")
    assert code == 1 and "71007" in out  # nothing registered yet
    code, out = cli(daemon, "register", "--url", url, "--tags", "user_add_org,bpms_instance_change")
    assert code == 0, out
    assert "callback URL checked input=events" in daemon.log()  # the check_url round trip
    code, out = cli(daemon, "show")
    shown = json.loads(out)
    assert shown["url"] == url
    assert shown["call_back_tag"] == ["user_add_org", "bpms_instance_change"]
    assert AES_KEY not in out and TOKEN not in out  # shown masked
    assert push(sim, {"EventType": "user_add_org", "UserId": ["u9"]})["delivered"]
    wait_until(lambda: len(sim.messages(token="tok-cb")) == 1)
    assert sim.messages(token="tok-cb")[0]["title"].startswith("[user_add_org]")
    assert push(sim, {"EventType": "bpms_instance_change"})["delivered"]  # no rule: not sent
    code, out = cli(daemon, "failed")
    assert code == 0 and json.loads(out)["failed_list"] == []
    code, out = cli(daemon, "delete")
    assert code == 0
    code, out = cli(daemon, "show")
    assert code == 1
    assert len(sim.messages(token="tok-cb")) == 1
    assert AES_KEY not in daemon.log() and TOKEN not in daemon.log()


def test_registering_a_url_that_does_not_answer_success_fails(
    sim: Simulator, daemon: Daemon
) -> None:
    code, out = cli(daemon, "register", "--url", f"{daemon.url}/nowhere", "--tags", "user_add_org")
    assert code == 1 and "71009" in out
    code, out = cli(daemon, "show")
    assert code == 1  # nothing was registered


def test_update_and_events_the_daemon_cannot_take_are_listed_as_failed(
    sim: Simulator, daemon: Daemon
) -> None:
    url = f"{daemon.url}/dingtalk/events"
    assert cli(daemon, "register", "--url", url, "--tags", "user_add_org")[0] == 0
    assert cli(daemon, "update", "--url", url, "--tags", "user_leave_org")[0] == 0
    assert json.loads(cli(daemon, "show")[1])["call_back_tag"] == ["user_leave_org"]
    daemon.stop()
    answer = push(sim, {"EventType": "user_leave_org"})
    assert not answer["delivered"]
    failed = json.loads(cli(daemon, "failed")[1])["failed_list"]
    assert [f["event"]["EventType"] for f in failed] == ["user_leave_org"]
    assert requests.get(f"{sim.url}/_sim/health", timeout=5).ok
