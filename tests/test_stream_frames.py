"""Stream mode's wire format (bridge/inputs/streamframes.py), pure: frames read or refused with a
reason, the acks written, connections/open's body and answer, the backoff; any bytes as a frame
give a Frame or an InputError 400, never another exception."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import InputError
from bridge.inputs import streamframes as sf


def frame_text(**over: Any) -> str:
    message: dict[str, Any] = {
        "specVersion": "1.0",
        "type": "CALLBACK",
        "headers": {
            "appId": "a",
            "contentType": "application/json",
            "messageId": "212ca9d7_974_1898c159aa6_1783b",
            "time": "1690362102194",
            "topic": sf.ROBOT_TOPIC,
        },
        "data": json.dumps({"msgId": "m1", "text": {"content": " help"}}),
    }
    message |= over
    return json.dumps(message)


def test_a_documented_frame_is_read_with_its_data_decoded() -> None:
    frame = sf.parse_frame(frame_text().encode())
    assert (frame.type, frame.topic) == ("CALLBACK", sf.ROBOT_TOPIC)
    assert frame.message_id == "212ca9d7_974_1898c159aa6_1783b"
    assert frame.data == {"msgId": "m1", "text": {"content": " help"}}
    assert json.loads(frame.raw_data) == frame.data


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[]", "not a JSON object"),
        ("{", "not valid JSON"),
        ("[" * 100 + "]" * 100, "deeper than"),
        (frame_text(type="PUSH"), "type is not one of"),
        (frame_text(headers=[]), "no headers object"),
        (frame_text(headers={"messageId": "x"}), "no topic header"),
        (frame_text(headers={"topic": "t"}), "no messageId header"),
        (frame_text(headers={"topic": "t", "messageId": "x" * 257}), "no messageId header"),
        (frame_text(data={"a": 1}), "data is not a string"),
        (frame_text(data="{nope"), "the frame's data is not valid JSON"),
        (frame_text(data="[" * 100 + "]" * 100), "the frame's data is JSON nested deeper"),
        (frame_text(data="1" * 2000), "digits"),
    ],
)
def test_what_is_not_a_frame_is_refused_saying_why(text: str, says: str) -> None:
    with pytest.raises(InputError) as refused:
        sf.parse_frame(text)
    assert refused.value.status == 400 and says in str(refused.value)


def test_bytes_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(InputError, match="not UTF-8"):
        sf.parse_frame(b'{"type": "\xff"}')


@settings(max_examples=400, deadline=None, database=None)
@given(raw=st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_any_bytes_are_a_frame_or_a_400(raw: bytes | str) -> None:
    try:
        frame = sf.parse_frame(raw)
    except InputError as exc:
        assert exc.status == 400
    else:
        assert frame.type in ("SYSTEM", "EVENT", "CALLBACK") and frame.message_id


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None, database=None)
@given(
    kind=st.sampled_from(["SYSTEM", "EVENT", "CALLBACK", "x", 1, None]),
    headers=st.dictionaries(
        st.sampled_from(["topic", "messageId", "time", "x"]), json_values, max_size=4
    ),
    data=st.one_of(json_values, json_values.map(json.dumps)),
)
def test_frame_shaped_json_is_a_frame_or_a_400(kind: Any, headers: Any, data: Any) -> None:
    text = json.dumps({"type": kind, "headers": headers, "data": data})
    try:
        frame = sf.parse_frame(text)
    except InputError as exc:
        assert exc.status == 400
    else:
        assert frame.topic == headers["topic"] and frame.raw_data == data


def ack_of(ack: sf.Ack) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(ack.text)
    assert body["code"] == ack.code
    return body


@pytest.mark.parametrize(
    ("ack", "code", "data"),
    [
        (sf.callback_ack("m"), 200, {"response": None}),
        (sf.event_ack("m", True), 200, {"status": "SUCCESS", "message": "OK"}),
        (sf.event_ack("m", False, "busy"), 500, {"status": "LATER", "message": "busy"}),
        (sf.unknown_topic_ack("m"), 404, {"response": None}),
    ],
)
def test_acks_carry_the_message_id_code_and_data_as_a_json_string(
    ack: sf.Ack, code: int, data: dict[str, Any]
) -> None:
    body = ack_of(ack)
    assert body["headers"] == {"messageId": "m", "contentType": "application/json"}
    assert (body["code"], json.loads(body["data"])) == (code, data)


def test_a_ping_is_answered_with_its_own_data() -> None:
    ping = sf.parse_frame(
        frame_text(
            type="SYSTEM",
            headers={"topic": "ping", "messageId": "p1"},
            data='{"opaque": "9c1b"}',
        )
    )
    body = ack_of(sf.ping_reply(ping))
    assert (body["code"], body["data"], body["headers"]["messageId"]) == (
        200,
        '{"opaque": "9c1b"}',
        "p1",
    )


def test_connections_open_body_and_answer() -> None:
    subs = sf.subscriptions([sf.ROBOT_TOPIC, sf.CARD_TOPIC, sf.ROBOT_TOPIC], events=True)
    assert subs == [
        {"type": "EVENT", "topic": "*"},
        {"type": "CALLBACK", "topic": sf.CARD_TOPIC},
        {"type": "CALLBACK", "topic": sf.ROBOT_TOPIC},
    ]
    body = sf.open_body("key", "secret", subs)
    assert body == {"clientId": "key", "clientSecret": "secret", "subscriptions": subs, "ua": sf.UA}
    endpoint, ticket = sf.parse_open_answer(
        {"endpoint": "wss://wss-open-connection.dingtalk.com:443/connect", "ticket": "a+b/c="}
    )
    assert sf.socket_url(endpoint, ticket) == (
        "wss://wss-open-connection.dingtalk.com:443/connect?ticket=a%2Bb%2Fc%3D"
    )


@pytest.mark.parametrize(
    "answer",
    [None, [], {"ticket": "t"}, {"endpoint": "https://x", "ticket": "t"}, {"endpoint": "ws://x"}],
)
def test_a_malformed_open_answer_is_refused(answer: Any) -> None:
    with pytest.raises(InputError):
        sf.parse_open_answer(answer)


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (401, {"code": "InvalidAuthentication", "message": "bad"}, "refused the app's credentials"),
        (403, None, "refused the app's credentials: HTTP 403; check app_key"),
        (400, {"code": "InvalidParameter"}, "refused connections/open: HTTP 400 InvalidParameter;"),
        (503, {"code": "ServiceUnavailable"}, "connections/open answered HTTP 503"),
    ],
)
def test_open_refusals_say_what_to_check(status: int, body: Any, says: str) -> None:
    assert says in sf.open_refusal(status, body)


@pytest.mark.parametrize(
    ("attempt", "jitter", "seconds"),
    [(0, 0.0, 1.0), (1, 0.0, 2.0), (3, 0.5, 8.8), (5, 0.0, 32.0), (6, 0.0, 60.0), (60, 0.99, 60.0)],
)
def test_backoff_doubles_with_jitter_up_to_a_minute(
    attempt: int, jitter: float, seconds: float
) -> None:
    assert sf.backoff(attempt, jitter) == pytest.approx(seconds)
