"""One Stream link (bridge/app/streams.py) against the simulator's gateway, in process: the
topic table (a handler plugged in for another CALLBACK topic is subscribed to and answers its
frames; a topic or an EVENT nobody handles gets 404; a handler that raises gets 500 and the link
goes on), and a stop that closes the connection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bridge.app.streams import Handled, LinkInputs, StreamLink, Streams, link_inputs
from bridge.clock import SYSTEM_CLOCK
from bridge.config.inputs.listening import StreamApp
from bridge.errors import InputError, Reason
from bridge.inputs import streamframes as sf
from bridge.model import Accepted
from bridge.simulator import AppSpec, SimulatorSpec, SimulatorState, serve_in_thread
from bridge.simulator.server import SimulatorServer
from tests.harness import compile_yaml, wait_until

KEY, SECRET = "dinglinkapp", "link-secret"


class NoSink:
    """The link's inputs here are none: nothing may reach the sink."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the sink was called: {name}")


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    spec = SimulatorSpec(apps={KEY: AppSpec(app_secret=SECRET, agent_id=1)})
    with serve_in_thread("127.0.0.1:0", SimulatorState(spec)) as running:
        yield running


def gateway(sim: SimulatorServer) -> dict[str, Any]:
    state: dict[str, Any] = requests.get(f"{sim.url}/_sim/stream", timeout=5).json()
    return state


def link(sim: SimulatorServer, topics: dict[str, Any], rejected: list[Any]) -> StreamLink:
    app = StreamApp(KEY, SECRET, sim.url)
    made = StreamLink(
        LinkInputs(app),
        topics,
        NoSink(),
        lambda name, reason: rejected.append((name, reason)),
        requests.Session(),
        SYSTEM_CLOCK,
    )
    made.start()
    wait_until(lambda: made.status()["state"] == "connected", timeout=10)
    return made


def card_click(frame: sf.Frame) -> Handled:
    response = {"cardData": {"cardParamMap": {"clicked": frame.data["outTrackId"]}}}
    return Handled(sf.callback_ack(frame.message_id, response))


def test_a_plugged_topic_is_subscribed_to_and_its_handler_answers(sim: SimulatorServer) -> None:
    running = link(sim, {sf.CARD_TOPIC: card_click}, [])
    try:
        [conn] = gateway(sim)["connections"]
        assert conn["subscriptions"] == [f"CALLBACK {sf.CARD_TOPIC}"]
        body = {"app_key": KEY, "callback": {"topic": sf.CARD_TOPIC, "data": {"outTrackId": "a1"}}}
        requests.post(f"{sim.url}/_sim/stream/push", json=body, timeout=5).raise_for_status()
        [ack] = wait_until(lambda: gateway(sim)["acks"])
        assert ack["code"] == 200
        assert json.loads(ack["data"])["response"]["cardData"]["cardParamMap"] == {"clicked": "a1"}
        assert running.stats.acks == {200: 1}
    finally:
        running.stop(5)
    assert not running.alive() and running.status()["state"] == "stopped"
    wait_until(lambda: not gateway(sim)["connections"][0]["open"])


def test_a_raising_handler_gets_500_and_the_link_goes_on(sim: SimulatorServer) -> None:
    def broken(frame: sf.Frame) -> Handled:
        raise RuntimeError("bug")

    running = link(sim, {sf.CARD_TOPIC: broken}, [])
    try:
        body = {"app_key": KEY, "callback": {"topic": sf.CARD_TOPIC, "data": {}}}
        for _ in range(2):
            requests.post(f"{sim.url}/_sim/stream/push", json=body, timeout=5).raise_for_status()
        wait_until(lambda: len(gateway(sim)["acks"]) == 2)
        assert [a["code"] for a in gateway(sim)["acks"]] == [500, 500]
        assert len(gateway(sim)["connections"]) == 1  # no reconnect for it
    finally:
        running.stop(5)


@pytest.mark.parametrize(
    ("kind", "topic"),
    [("CALLBACK", "/v1.0/graph/api/invoke"), ("CALLBACK", sf.ROBOT_TOPIC), ("EVENT", "*")],
)
def test_what_nothing_handles_is_acknowledged_404(
    sim: SimulatorServer, kind: str, topic: str
) -> None:
    idle = StreamLink(  # not started: only its topic table is asked
        LinkInputs(StreamApp(KEY, SECRET, sim.url)),
        {sf.CARD_TOPIC: card_click},
        NoSink(),
        lambda name, reason: None,
        requests.Session(),
        SYSTEM_CLOCK,
    )
    frame = sf.Frame(kind, topic, "m1", {}, "{}", {})  # type: ignore[arg-type]
    handled = idle._respond(frame)
    assert handled.ack.code == 404 and handled.then is None


def config_with(tmp_path: Path, sim: SimulatorServer, allow: list[str] | None) -> Any:
    """A config with a stream chat input allowing `allow` (None: no stream input)."""
    chat = (
        f"  chat: {{type: dingtalk_robot, listen: stream, app_key: {KEY},"
        f" app_secret: {SECRET}, api_base: '{sim.url}', allow: {{staff_ids: {allow}}}}}\n"
    )
    return compile_yaml(
        tmp_path,
        "targets: {ops: {type: robot, webhook: 'http://127.0.0.1:1/robot/send?access_token=t'}}\n"
        "inputs:\n  am: {type: alertmanager, path: /am}\n"
        + (chat if allow is not None else "")
        + "rules: [{name: all, inputs: [am], targets: [ops]}]\n",
    )


def test_streams_sync_keeps_a_connection_whose_app_and_subscriptions_stay(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    """A reload that changes an input but nothing of its connection keeps the connection (no
    new ticket) and serves the new input; removing the input closes it."""
    streams = Streams(NoSink(), lambda name, reason: None, requests.Session(), SYSTEM_CLOCK)
    try:
        assert streams.sync(config_with(tmp_path, sim, ["a"]), 5) == [KEY]
        wait_until(lambda: streams.status()[KEY]["state"] == "connected")
        assert streams.sync(config_with(tmp_path, sim, ["b"]), 5) == []
        inputs = streams.links[KEY].inputs
        assert inputs.chat is not None and inputs.chat.staff_ids == {"b"}
        assert len(gateway(sim)["opens"]) == 1
        assert streams.sync(config_with(tmp_path, sim, None), 5) == [KEY]
        assert streams.status() == {}
        wait_until(lambda: not gateway(sim)["connections"][0]["open"])
    finally:
        streams.stop(5)


class EventSink:
    """Takes events as the bridge does, or fails as its store can (`fail`: the InputError)."""

    def __init__(self, fail: InputError | None = None, seen: bool = False) -> None:
        self.fail, self.seen = fail, seen
        self.taken: list[Any] = []

    def accept_once(self, spec: Any, events: list[Any], request: Any) -> Any:
        if self.fail is not None:
            raise self.fail
        self.taken.append((events, request))
        return None if self.seen else Accepted(messages=len(events))


EVENT = {"EventType": "user_add_org", "UserId": ["u1"]}


@pytest.mark.parametrize(
    ("sink", "data", "code", "status", "taken"),
    [
        (EventSink(), EVENT, 200, "SUCCESS", 1),
        (EventSink(seen=True), EVENT, 200, "SUCCESS", 1),  # taken before: not again
        (EventSink(InputError(503, Reason.STORE, "busy")), EVENT, 500, "LATER", 0),
        (EventSink(InputError(503, Reason.QUEUE_FULL, "full")), EVENT, 500, "LATER", 0),
        (EventSink(InputError(409, Reason.REPLAY, "again")), EVENT, 200, "SUCCESS", 0),
        (EventSink(), {"no": "type"}, 200, "SUCCESS", 0),  # refused, so not sent forever
        (EventSink(), [1], 200, "SUCCESS", 0),
    ],
)
def test_an_event_is_acknowledged_success_once_stored_and_later_when_not(
    tmp_path: Path, sink: EventSink, data: Any, code: int, status: str, taken: int
) -> None:
    config = compile_yaml(
        tmp_path,
        "targets: {ops: {type: robot, webhook: 'http://127.0.0.1:1/robot/send?access_token=t'}}\n"
        f"inputs: {{ev: {{type: dingtalk_callback, listen: stream, app_key: {KEY},"
        f" app_secret: {SECRET}}}}}\n"
        "rules: [{name: all, inputs: [ev], targets: [ops]}]\n",
    )
    rejected: list[Any] = []
    idle = StreamLink(
        link_inputs(config)[KEY],
        {},
        sink,  # type: ignore[arg-type]
        lambda name, reason: rejected.append((name, reason)),
        requests.Session(),
        SYSTEM_CLOCK,
    )
    frame = sf.parse_frame(
        json.dumps(
            {
                "type": "EVENT",
                "headers": {"topic": "*", "messageId": "e1"},
                "data": json.dumps(data),
            }
        )
    )
    handled = idle._respond(frame)
    body = json.loads(handled.ack.text)
    assert (handled.ack.code, json.loads(body["data"])["status"]) == (code, status)
    assert len(sink.taken) == taken
    assert bool(rejected) is (not isinstance(data, dict) or "EventType" not in data)
    if sink.taken:
        [(events, once)] = sink.taken
        assert events[0].labels["EventType"] == "user_add_org"
        assert once.key == "stream\ne1"
