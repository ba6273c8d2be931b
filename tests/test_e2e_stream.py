"""Stream mode against the real daemon and the simulator's Stream gateway: chat commands and
events over the app's connection taken as over HTTP, a dropped connection and a `disconnect`
answered by a new connection on a new ticket (what was pushed meanwhile delivered), a frame sent
again handled once, pings answered, a wrong app secret shown in /-/ready, and a reload that adds
and removes a stream input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.harness import Daemon, Simulator, wait_until

KEY, SECRET = "dingstreamapp", "stream-app-secret"
SESSION = "stream-session-1"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    sim = Simulator(
        spec={
            "robots": {"tok-stream": {"rate_per_minute": 0}},
            "apps": {KEY: {"app_secret": SECRET, "agent_id": 1}},
        }
    )
    yield sim
    sim.stop()


def daemon_config(sim: Simulator, secret: str = SECRET, stream: bool = True) -> dict[str, Any]:
    app = {"listen": "stream", "app_key": KEY, "app_secret": secret, "api_base": sim.url}
    inputs: dict[str, Any] = {"am": {"type": "alertmanager", "path": "/am"}}
    if stream:
        inputs |= {
            "chat": {"type": "dingtalk_robot", **app, "allow": {"staff_ids": ["oncall-1"]}},
            "events": {"type": "dingtalk_callback", **app},
        }
    return {
        "targets": {
            "ops": {
                "type": "robot",
                "webhook": sim.robot_url("tok-stream"),
                "rate_limit": {"messages": 0},
            }
        },
        "inputs": inputs,
        "rules": [
            {
                "name": "events",
                "inputs": ["events"] if stream else ["am"],
                "targets": ["ops"],
                "title": "{{ labels.EventType }}",
            }
        ],
    }


@pytest.fixture
def daemon(sim: Simulator, tmp_path: Path) -> Iterator[Daemon]:
    sim.control("reset")
    daemon = Daemon(daemon_config(sim), directory=tmp_path)
    # Both sides: the gateway registers a connection just after its handshake ends.
    wait_until(lambda: connected(daemon) and open_at_gateway(sim) == 1, timeout=15)
    yield daemon
    daemon.stop()


def ready(daemon: Daemon) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(f"{daemon.url}/-/ready", timeout=5).json()
    return body


def connected(daemon: Daemon) -> bool:
    link = ready(daemon).get("streams", {}).get(KEY)
    return link is not None and link["state"] == "connected"


def open_at_gateway(sim: Simulator) -> int:
    return sum(c["open"] for c in stream(sim)["connections"])


def stream(sim: Simulator) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(f"{sim.url}/_sim/stream", timeout=5).json()
    return body


def say(sim: Simulator, text: str, staff: str = "oncall-1", **extra: Any) -> dict[str, Any]:
    robot = {
        "text": text,
        "senderStaffId": staff,
        "senderNick": staff.upper(),
        "sessionWebhook": f"{sim.url}/robot/sendBySession?session={SESSION}",
        **extra,
    }
    pushed: dict[str, Any] = sim.control("stream/push", {"app_key": KEY, "robot": robot})
    return pushed


def replies(sim: Simulator) -> list[str]:
    return [m["text"] for m in sim.messages(token=SESSION)]


def acks_of(sim: Simulator, message_id: str) -> list[dict[str, Any]]:
    return [a for a in stream(sim)["acks"] if a.get("message_id") == message_id]


def test_a_chat_command_over_stream_is_answered_in_the_chat(sim: Simulator, daemon: Daemon) -> None:
    pushed = say(sim, "help")
    wait_until(lambda: replies(sim), timeout=10)
    [reply] = replies(sim)
    assert reply.startswith("@oncall-1 ") and "silence <matchers>" in reply
    [ack] = acks_of(sim, pushed["message_id"])
    assert ack["code"] == 200 and json.loads(ack["data"]) == {"response": None}
    subs = stream(sim)["connections"][0]["subscriptions"]
    assert subs == ["CALLBACK /v1.0/im/bot/messages/get", "EVENT *"]


def test_over_stream_the_allow_list_decides_as_over_http(sim: Simulator, daemon: Daemon) -> None:
    say(sim, "silence alertname=Disk 1h", staff="visitor-9")
    wait_until(lambda: replies(sim), timeout=10)
    assert "你无权在这里执行 silence" in replies(sim)[0]
    say(sim, "silence alertname=Disk 1h")
    wait_until(lambda: len(replies(sim)) == 2, timeout=10)
    assert replies(sim)[1].startswith('@oncall-1 已静默 alertname="Disk"')  # zh-CN


def test_an_event_over_stream_is_taken_like_an_http_callback(
    sim: Simulator, daemon: Daemon
) -> None:
    event = {"EventType": "user_add_org", "UserId": ["u1"], "CorpId": "dingcorp"}
    pushed = sim.control("stream/push", {"app_key": KEY, "event": event})
    [message] = sim.wait_messages(1, token="tok-stream")
    assert "user\\_add\\_org" in message["text"] and "UserId: u1" in message["text"]
    wait_until(lambda: acks_of(sim, pushed["message_id"]))
    [ack] = acks_of(sim, pushed["message_id"])
    assert (ack["code"], ack["status"]) == (200, "SUCCESS")
    received = requests.get(f"{daemon.url}/metrics", timeout=5).text
    assert 'dingtalk_bridge_events_received_total{input="events"} 1.0' in received


def test_a_frame_sent_again_is_handled_once(sim: Simulator, daemon: Daemon) -> None:
    first = say(sim, "help")
    wait_until(lambda: acks_of(sim, first["message_id"]))
    # DingTalk sends it again after the ack (§7): the same messageId ...
    sim.control(
        "stream/push",
        {"app_key": KEY, "message_id": first["message_id"], "robot": {"text": "help"}},
    )
    # ... or the same message under another frame: the same msgId.
    say(sim, "status", msgId="msg-twice")
    say(sim, "status", msgId="msg-twice")
    event = {"EventType": "user_leave_org", "UserId": ["u2"]}
    pushed = sim.control("stream/push", {"app_key": KEY, "event": event})
    sim.control("stream/push", {"app_key": KEY, "event": event, "message_id": pushed["message_id"]})
    wait_until(lambda: len(stream(sim)["acks"]) == 6)
    wait_until(lambda: len(replies(sim)) >= 2 and sim.messages(token="tok-stream"))
    assert len(replies(sim)) == 2  # help once, status once
    assert len(sim.messages(token="tok-stream")) == 1  # the event once
    assert "stream message taken before" in daemon.log()


def test_a_dropped_connection_comes_back_on_a_new_ticket_with_what_was_pushed_meanwhile(
    sim: Simulator, daemon: Daemon
) -> None:
    say(sim, "help")
    wait_until(lambda: replies(sim))
    sim.control("stream/disconnect", {"app_key": KEY, "drop": True})
    say(sim, "status")  # no connection now: it waits for the next one
    wait_until(lambda: len(replies(sim)) == 2, timeout=15)
    opens = stream(sim)["opens"]
    assert len(opens) == 2 and all(o["ok"] for o in opens)
    assert [c["open"] for c in stream(sim)["connections"]] == [False, True]
    wait_until(lambda: connected(daemon))
    assert ready(daemon)["streams"][KEY]["reconnects"] == 1
    metrics = requests.get(f"{daemon.url}/metrics", timeout=5).text
    assert f'dingtalk_bridge_stream_reconnects_total{{app_key="{KEY}"}} 1.0' in metrics
    assert f'dingtalk_bridge_stream_connected{{app_key="{KEY}"}} 1.0' in metrics


def test_disconnect_is_acknowledged_and_a_new_connection_opened_at_once(
    sim: Simulator, daemon: Daemon
) -> None:
    sim.control("stream/disconnect", {"app_key": KEY, "close_after": 30})
    wait_until(lambda: len(stream(sim)["opens"]) == 2, timeout=5)
    wait_until(lambda: [c["open"] for c in stream(sim)["connections"]] == [False, True])
    say(sim, "help")
    wait_until(lambda: replies(sim))
    [_first, second] = stream(sim)["connections"]
    assert stream(sim)["frames"][-1]["connection"] == second["id"]


def test_a_ping_is_answered_with_its_data(sim: Simulator, daemon: Daemon) -> None:
    pinged = sim.control("stream/ping", {"app_key": KEY})
    [message_id] = pinged["message_ids"]
    wait_until(lambda: acks_of(sim, message_id))
    [ack] = acks_of(sim, message_id)
    sent = next(f for f in stream(sim)["frames"] if f["message_id"] == message_id)
    assert ack["code"] == 200 and sent["topic"] == "ping"
    assert set(json.loads(ack["data"])) == {"opaque"}


def test_a_wrong_app_secret_is_shown_in_ready_and_retried_slowly(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.control("reset")
    daemon = Daemon(daemon_config(sim, secret="not-the-secret"), directory=tmp_path)
    try:
        wait_until(lambda: ready(daemon)["streams"][KEY]["state"] == "failing")
        details = ready(daemon)
        link = details["streams"][KEY]
        assert "refused the app's credentials: HTTP 401" in link["last_error"]
        assert "not-the-secret" not in json.dumps(details)
        assert any("stream connection of app" in w for w in details["warnings"])
        opens = len(stream(sim)["opens"])
        assert opens <= 3  # 1 s, 2 s, 4 s ... : no loop hammering DingTalk
        assert "DingTalk refused the app's credentials" in daemon.log()
    finally:
        daemon.stop()
    assert "not-the-secret" not in daemon.log()


def test_reload_opens_and_closes_stream_connections(sim: Simulator, tmp_path: Path) -> None:
    sim.control("reset")
    daemon = Daemon(daemon_config(sim, stream=False), directory=tmp_path)
    try:
        assert ready(daemon)["streams"] == {}
        daemon.config_path.write_text(yaml.safe_dump(_with_listen(daemon, daemon_config(sim))))
        answer = requests.post(f"{daemon.url}/-/reload", timeout=10).json()
        assert answer["stream_connections_changed"] == [KEY]
        wait_until(lambda: connected(daemon), timeout=10)
        say(sim, "help")
        wait_until(lambda: replies(sim))
        daemon.config_path.write_text(
            yaml.safe_dump(_with_listen(daemon, daemon_config(sim, stream=False)))
        )
        answer = requests.post(f"{daemon.url}/-/reload", timeout=10).json()
        assert answer["stream_connections_changed"] == [KEY]
        assert ready(daemon)["streams"] == {}
        wait_until(lambda: not any(c["open"] for c in stream(sim)["connections"]))
    finally:
        daemon.stop()


def _with_listen(daemon: Daemon, config: dict[str, Any]) -> dict[str, Any]:
    """`config` as the harness wrote it: its state_dir and listen address."""
    written = yaml.safe_load(daemon.config_path.read_text("utf-8"))
    return {**config, "state_dir": written["state_dir"], "server": written["server"]}


def test_with_two_workers_one_connection_serves_the_app(sim: Simulator, tmp_path: Path) -> None:
    """`server.workers: 2`: the connection runs in worker 0 (DingTalk would split an app's
    messages between two), and whichever worker answers /-/ready and /metrics shows it."""
    sim.control("reset")
    config = daemon_config(sim)
    config["server"] = {"workers": 2}
    daemon = Daemon(config, directory=tmp_path)
    try:
        wait_until(lambda: len(ready(daemon).get("workers", {})) == 2, timeout=20)
        wait_until(lambda: connected(daemon), timeout=15)
        say(sim, "help")
        wait_until(lambda: replies(sim))
        assert [c["open"] for c in stream(sim)["connections"]] == [True]
        for _ in range(4):  # each on a new connection: either worker may answer
            assert connected(daemon)
            metrics = requests.get(f"{daemon.url}/metrics", timeout=5).text
            assert f'dingtalk_bridge_stream_connected{{app_key="{KEY}"}} 1.0' in metrics
    finally:
        daemon.stop()


def test_stop_closes_the_connection_cleanly(sim: Simulator, tmp_path: Path) -> None:
    sim.control("reset")
    daemon = Daemon(daemon_config(sim), directory=tmp_path)
    wait_until(lambda: connected(daemon) and open_at_gateway(sim) == 1, timeout=15)
    assert daemon.stop() == 0
    wait_until(lambda: open_at_gateway(sim) == 0, timeout=5)
    assert "stream connection failed" not in daemon.log()
