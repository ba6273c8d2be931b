"""The simulator's Stream gateway (bridge/simulator/stream.py): connections/open, single-use
tickets that expire on the simulator's clock, frames waiting for a connection, redelivery of
what is not acknowledged, SYSTEM ping and disconnect; and the official Python SDK
(`dingtalk-stream`) connecting to it, receiving a robot message and acknowledging it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from bridge.cli.simulator_embed import spec_for_config
from bridge.simulator import AppSpec, SimulatorSpec, SimulatorState, serve_in_thread
from bridge.simulator.server import SimulatorServer
from bridge.simulator.stream import ROBOT_TOPIC, StreamGateway
from tests.harness import wait_until

KEY, SECRET = "dingstreamkey", "stream-secret"
ROBOT = {"type": "CALLBACK", "topic": ROBOT_TOPIC}
EVENTS = {"type": "EVENT", "topic": "*"}


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    spec = SimulatorSpec(apps={KEY: AppSpec(app_secret=SECRET, agent_id=1)})
    with serve_in_thread("127.0.0.1:0", SimulatorState(spec)) as running:
        yield running


def open_connection(
    sim: SimulatorServer, secret: str = SECRET, subs: list[dict[str, str]] | None = None
) -> requests.Response:
    body = {"clientId": KEY, "clientSecret": secret, "subscriptions": subs or [ROBOT, EVENTS]}
    return requests.post(f"{sim.url}/v1.0/gateway/connections/open", json=body, timeout=5)


def ws(sim: SimulatorServer, subs: list[dict[str, str]] | None = None) -> ClientConnection:
    """A connection, once the gateway has it (the handshake ends before the server's handler
    registers it: a ping sent in between would reach nobody)."""
    before = len(stream_state(sim)["connections"])  # every one since the reset
    opened = open_connection(sim, subs=subs).json()
    conn = connect(f"{opened['endpoint']}?ticket={quote_plus(opened['ticket'])}", proxy=None)
    wait_until(lambda: len(stream_state(sim)["connections"]) > before)
    return conn


def control(sim: SimulatorServer, path: str, body: Any = None) -> Any:
    answer = requests.post(f"{sim.url}/_sim/{path}", json=body or {}, timeout=5)
    answer.raise_for_status()
    return answer.json()


def stream_state(sim: SimulatorServer) -> dict[str, Any]:
    state: dict[str, Any] = requests.get(f"{sim.url}/_sim/stream", timeout=5).json()
    return state


def frame(conn: ClientConnection) -> dict[str, Any]:
    received: dict[str, Any] = json.loads(conn.recv(timeout=5))
    return received


def ack(conn: ClientConnection, received: dict[str, Any], code: int = 200, **data: Any) -> None:
    body = {"code": code, "headers": {"messageId": received["headers"]["messageId"]}}
    conn.send(json.dumps({**body, "message": "OK", "data": json.dumps(data or {"response": None})}))


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"clientId": KEY, "clientSecret": "wrong", "subscriptions": [ROBOT]}, 401, None),
        ({"clientId": "nobody", "clientSecret": SECRET, "subscriptions": [ROBOT]}, 401, None),
        ({"clientSecret": SECRET, "subscriptions": [ROBOT]}, 400, "MissingclientId"),
        ({"clientId": KEY, "subscriptions": [ROBOT]}, 400, "MissingclientSecret"),
        ({"clientId": KEY, "clientSecret": SECRET, "subscriptions": []}, 400, None),
        (
            {
                "clientId": KEY,
                "clientSecret": SECRET,
                "subscriptions": [{"type": "EVENT", "topic": "x"}],
            },
            400,
            None,
        ),
        ([1, 2], 400, None),
    ],
)
def test_open_refuses_bad_credentials_and_bodies_with_a_v1_error(
    sim: SimulatorServer, body: Any, status: int, code: str | None
) -> None:
    answer = requests.post(f"{sim.url}/v1.0/gateway/connections/open", json=body, timeout=5)
    assert answer.status_code == status
    assert set(answer.json()) == {"code", "message", "requestid"}
    if code is not None:
        assert answer.json()["code"] == code


def test_a_ticket_opens_one_connection_only(sim: SimulatorServer) -> None:
    opened = open_connection(sim).json()
    assert opened["endpoint"] == f"{sim.stream.url}/connect"
    url = f"{opened['endpoint']}?ticket={quote_plus(opened['ticket'])}"
    with connect(url, proxy=None):
        pass
    with pytest.raises(InvalidStatus) as refused:
        connect(url, proxy=None)
    assert refused.value.response.status_code == 401


def test_a_ticket_expires_after_90_seconds_of_the_simulator_clock(sim: SimulatorServer) -> None:
    opened = open_connection(sim).json()
    control(sim, "clock", {"advance": 91})
    with pytest.raises(InvalidStatus):
        connect(f"{opened['endpoint']}?ticket={quote_plus(opened['ticket'])}", proxy=None)


def test_a_frame_pushed_while_nobody_is_connected_waits_for_a_connection(
    sim: SimulatorServer,
) -> None:
    pushed = control(sim, "stream/push", {"app_key": KEY, "robot": {"text": "help"}})
    with ws(sim) as conn:
        received = frame(conn)
        assert received["type"] == "CALLBACK"
        assert received["headers"]["messageId"] == pushed["message_id"]
        assert received["headers"]["topic"] == ROBOT_TOPIC
        data = json.loads(received["data"])
        assert data["text"]["content"] == " help" and data["robotCode"] == KEY
        ack(conn, received)
        wait_until(lambda: stream_state(sim)["acks"])
    state = stream_state(sim)
    assert state["acks"][0]["code"] == 200 and state["unacknowledged"] == []


def test_frames_go_only_to_connections_subscribed_to_their_topic(sim: SimulatorServer) -> None:
    with ws(sim, subs=[ROBOT]) as robot_only:
        control(sim, "stream/push", {"app_key": KEY, "event": {"EventType": "user_add_org"}})
        control(sim, "stream/push", {"app_key": KEY, "robot": {"text": "status"}})
        assert frame(robot_only)["type"] == "CALLBACK"  # the event waits for an EVENT subscriber
        with ws(sim, subs=[EVENTS]) as events:
            received = frame(events)
            assert received["type"] == "EVENT"
            assert received["headers"]["eventType"] == "user_add_org"


@pytest.mark.parametrize("answer", ["none", "LATER"])
def test_an_event_not_acknowledged_with_success_is_sent_again_after_the_timeout(
    sim: SimulatorServer, answer: str
) -> None:
    control(sim, "stream", {"redeliver_after": 30})
    with ws(sim) as conn:
        control(sim, "stream/push", {"app_key": KEY, "event": {"EventType": "x"}})
        first = frame(conn)
        if answer == "LATER":
            ack(conn, first, 500, status="LATER")
            wait_until(lambda: stream_state(sim)["acks"])
        control(sim, "clock", {"advance": 31})
        again = frame(conn)
        assert again["headers"]["messageId"] == first["headers"]["messageId"]
        ack(conn, again, status="SUCCESS")
        wait_until(lambda: not stream_state(sim)["unacknowledged"])
    attempts = [f["attempt"] for f in stream_state(sim)["frames"]]
    assert attempts == [1, 2]


def test_a_frame_unacknowledged_when_its_connection_ends_goes_to_the_next(
    sim: SimulatorServer,
) -> None:
    with ws(sim) as conn:
        pushed = control(sim, "stream/push", {"app_key": KEY, "robot": {"text": "help"}})
        frame(conn)  # not acknowledged
    with ws(sim) as conn:
        assert frame(conn)["headers"]["messageId"] == pushed["message_id"]


def test_ping_is_recorded_with_its_echo_and_disconnect_closes_the_connection(
    sim: SimulatorServer,
) -> None:
    with ws(sim) as conn:
        control(sim, "stream/ping", {"app_key": KEY})
        ping = frame(conn)
        assert (ping["type"], ping["headers"]["topic"]) == ("SYSTEM", "ping")
        conn.send(
            json.dumps(
                {"code": 200, "headers": ping["headers"], "message": "OK", "data": ping["data"]}
            )
        )
        wait_until(lambda: stream_state(sim)["acks"])
        assert stream_state(sim)["acks"][0]["data"] == ping["data"]
        control(sim, "stream/disconnect", {"app_key": KEY, "close_after": 5})
        bye = frame(conn)
        assert (bye["type"], bye["headers"]["topic"]) == ("SYSTEM", "disconnect")
        control(sim, "clock", {"advance": 6})
        wait_until(lambda: not stream_state(sim)["connections"][0]["open"])


def test_control_requests_it_cannot_do_are_400(sim: SimulatorServer) -> None:
    for body in ({"app_key": KEY}, {"app_key": "nobody", "robot": {}}, {"app_key": 3}):
        answer = requests.post(f"{sim.url}/_sim/stream/push", json=body, timeout=5)
        assert answer.status_code == 400, body


SDK_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys
    import dingtalk_stream
    from dingtalk_stream import AckMessage

    # Nothing here may reach an outside address: the SDK's local-IP lookup is a UDP connect to
    # a public IP (stream.py get_host_ip).
    dingtalk_stream.DingTalkStreamClient.get_host_ip = lambda self: "127.0.0.1"

    class Echo(dingtalk_stream.ChatbotHandler):
        async def process(self, callback):
            message = dingtalk_stream.ChatbotMessage.from_dict(callback.data)
            print("GOT", message.text.content.strip(), flush=True)
            return AckMessage.STATUS_OK, "OK"

    client = dingtalk_stream.DingTalkStreamClient(
        dingtalk_stream.Credential(sys.argv[1], sys.argv[2])
    )
    client.register_callback_handler(dingtalk_stream.ChatbotMessage.TOPIC, Echo())
    asyncio.run(client.start())
    """
)


def test_the_official_sdk_receives_a_robot_message_and_acknowledges_it(
    sim: SimulatorServer,
) -> None:
    """`dingtalk-stream` reads DINGTALK_OPENAPI_ENDPOINT at import, so it runs in a process of
    its own with the variable set to the simulator."""
    env = {**os.environ, "DINGTALK_OPENAPI_ENDPOINT": sim.url, "NO_PROXY": "*"}
    sdk = subprocess.Popen(
        [sys.executable, "-c", SDK_SCRIPT, KEY, SECRET],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: any(c["open"] for c in stream_state(sim)["connections"]), timeout=20)
        pushed = control(sim, "stream/push", {"app_key": KEY, "robot": {"text": "status"}})
        acks = wait_until(lambda: stream_state(sim)["acks"], timeout=10)
        assert acks[0]["message_id"] == pushed["message_id"] and acks[0]["code"] == 200
        state = stream_state(sim)
        assert state["opens"][0]["ok"] is True
        assert state["connections"][0]["subscriptions"] == [f"CALLBACK {ROBOT_TOPIC}"]
        assert state["unacknowledged"] == []
    finally:
        sdk.terminate()
        output, _ = sdk.communicate(timeout=10)
    assert "GOT status" in output


def test_the_embedded_simulator_registers_the_apps_of_stream_inputs(tmp_path: Path) -> None:
    """`run --simulator`: a stream input's app can open its connection on the simulator."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "targets: {ops: {type: robot, webhook: 'http://127.0.0.1:1/robot/send?access_token=t'}}\n"
        "inputs:\n"
        "  chat: {type: dingtalk_robot, listen: stream, app_key: dingk, app_secret: s3cret,"
        " api_base: 'http://127.0.0.1:1'}\n"
        "rules: [{name: all, inputs: [chat], targets: [ops]}]\n"
    )
    assert spec_for_config(str(config)).apps["dingk"].app_secret == "s3cret"


@settings(max_examples=200, deadline=None, database=None)
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200), st.just("[" * 5000)))
def test_anything_a_client_sends_is_recorded_never_raised(text: str | bytes) -> None:
    gateway = StreamGateway(lambda key: SECRET if key == KEY else None)
    gateway.received(0.0, "conn", text)
    [record] = gateway.snapshot()["acks"]
    assert "invalid" in record or "code" in record


@settings(max_examples=200, deadline=None, database=None)
@given(
    body=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(["clientId", "clientSecret", "subscriptions", "type", "topic"]),
                inner,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_any_open_body_gets_a_ticket_or_a_v1_error(body: Any) -> None:
    gateway = StreamGateway(lambda key: SECRET if key == KEY else None)
    status, answer = gateway.open_connection(0.0, body)
    assert (status, set(answer)) in ((200, {"endpoint", "ticket"}), (400, ERROR), (401, ERROR))


ERROR = {"code", "message", "requestid"}
