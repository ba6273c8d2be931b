"""The simulator's pure request checks (bridge/simulator/checks.py): each bad part is rejected
with the errcode DingTalk answers with, and a good part passes. Tables, no state, no HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.simulator import codes
from bridge.simulator.checks import (
    Rejected,
    check_agent,
    check_sign,
    parse_json_object,
    recipients,
)
from bridge.simulator.spec import AppSpec

# The documented signing vector (reference §1.3).
VECTOR_TS = "1577262236757"
VECTOR_SECRET = "this is secret"
VECTOR_SIGN = "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM="
NOW = int(VECTOR_TS) / 1000


@pytest.mark.parametrize(
    ("body", "errmsg_part"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"  \n", "empty"),
        (b"{", "not valid JSON"),
        (b'{"a": NaN}', "not valid JSON"),
        (b"[1, 2]", "not an array"),
        (b'"text"', "not a string"),
        (b"true", "not a boolean"),
        (b"3", "not a scalar"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_rejected(body: bytes, errmsg_part: str) -> None:
    with pytest.raises(Rejected) as caught:
        parse_json_object(body)
    assert caught.value.errcode == codes.INVALID_PARAMETER
    assert errmsg_part in caught.value.errmsg


def test_a_json_object_is_parsed() -> None:
    assert parse_json_object(b'{"msgtype": "text", "n": 1.5}') == {
        "msgtype": "text",
        "n": 1.5,
    }


@pytest.mark.parametrize(
    ("query", "errmsg"),
    [
        ({}, codes.MSG_SIGN_NOT_MATCH),
        ({"timestamp": VECTOR_TS}, codes.MSG_SIGN_NOT_MATCH),
        ({"sign": VECTOR_SIGN}, codes.MSG_SIGN_NOT_MATCH),
        ({"timestamp": VECTOR_TS[:-3], "sign": VECTOR_SIGN}, codes.MSG_INVALID_TIMESTAMP),
        ({"timestamp": "-1577262236757", "sign": VECTOR_SIGN}, codes.MSG_INVALID_TIMESTAMP),
        ({"timestamp": "1577262236757.0", "sign": VECTOR_SIGN}, codes.MSG_INVALID_TIMESTAMP),
        (
            {"timestamp": str(int(VECTOR_TS) + 3_600_001), "sign": VECTOR_SIGN},
            codes.MSG_INVALID_TIMESTAMP,
        ),
        (
            {"timestamp": VECTOR_TS, "sign": VECTOR_SIGN.replace("+", "%2B")},
            codes.MSG_SIGN_NOT_MATCH,
        ),
        ({"timestamp": VECTOR_TS, "sign": "AAAA" + VECTOR_SIGN[4:]}, codes.MSG_SIGN_NOT_MATCH),
    ],
    ids=[
        "nothing",
        "no sign",
        "no timestamp",
        "seconds",
        "negative",
        "not an integer",
        "over an hour off",
        "encoded twice",
        "other sign",
    ],
)
def test_a_bad_signature_is_rejected(query: dict[str, str], errmsg: str) -> None:
    with pytest.raises(Rejected) as caught:
        check_sign(NOW, VECTOR_SECRET, query)
    assert (caught.value.errcode, caught.value.errmsg) == (codes.ROBOT_SECURITY_FAILED, errmsg)


@pytest.mark.parametrize("skew_ms", [0, 3_600_000, -3_600_000])
def test_the_documented_signature_passes_within_an_hour(skew_ms: int) -> None:
    check_sign(NOW + skew_ms / 1000, VECTOR_SECRET, {"timestamp": VECTOR_TS, "sign": VECTOR_SIGN})


APP = AppSpec(app_secret="s", agent_id=42)


@pytest.mark.parametrize(
    ("body", "errmsg_part"),
    [
        ({}, "agent_id"),
        ({"agent_id": "42"}, "agentId"),
        ({"agent_id": True}, "agentId"),
        ({"agent_id": 41}, "agentId"),
    ],
)
def test_a_wrong_agent_id_is_rejected(body: dict[str, Any], errmsg_part: str) -> None:
    with pytest.raises(Rejected) as caught:
        check_agent(body, APP)
    assert caught.value.errcode == codes.INVALID_PARAMETER
    assert errmsg_part in caught.value.errmsg


def test_the_app_agent_id_passes() -> None:
    check_agent({"agent_id": 42}, APP)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"userid_list": "a,b"}, (["a", "b"], [], False)),
        ({"userid_list": " a , ,b,a "}, (["a", "b"], [], False)),
        ({"dept_id_list": "1,2"}, ([], ["1", "2"], False)),
        ({"to_all_user": True}, ([], [], True)),
        ({"userid_list": "a", "to_all_user": False}, (["a"], [], False)),
    ],
)
def test_recipients_are_comma_separated_strings(
    body: dict[str, Any], expected: tuple[list[str], list[str], bool]
) -> None:
    assert recipients(body) == expected


@pytest.mark.parametrize(
    ("body", "errcode", "errmsg_part"),
    [
        ({"userid_list": ["a", "b"]}, codes.INVALID_PARAMETER, "userid_list"),
        ({"dept_id_list": [1]}, codes.INVALID_PARAMETER, "dept_id_list"),
        ({"userid_list": "a", "to_all_user": "yes"}, codes.INVALID_PARAMETER, "to_all_user"),
        ({}, codes.NO_RECIPIENT, codes.MSG_NO_RECIPIENT),
        ({"userid_list": " , "}, codes.NO_RECIPIENT, codes.MSG_NO_RECIPIENT),
        ({"to_all_user": False}, codes.NO_RECIPIENT, codes.MSG_NO_RECIPIENT),
    ],
)
def test_bad_recipients_are_rejected(body: dict[str, Any], errcode: int, errmsg_part: str) -> None:
    with pytest.raises(Rejected) as caught:
        recipients(body)
    assert caught.value.errcode == errcode
    assert errmsg_part in caught.value.errmsg
