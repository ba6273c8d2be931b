"""Tests for bridge.simulator: the local DingTalk the end-to-end tests rely on.

Most tests drive the pure `SimulatorState` with an injected clock (`now`), table-driven over
the errcode paths of reference/dingtalk.md §1-3. A few go over real sockets: an in-thread
waitress server for the control API and faults, and the real CLI as a subprocess.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import requests

from bridge.dingtalk.signing import robot_sign, signed_query
from bridge.simulator import (
    AppSpec,
    RobotSpec,
    SimulatorServer,
    SimulatorSpec,
    SimulatorState,
    SpecError,
    load_spec,
    main,
    serve_in_thread,
)
from bridge.simulator.faults import FaultError
from bridge.simulator.wsgi import parse_query

ROOT = Path(__file__).resolve().parents[1]

# The documented signing vector (reference §1.3).
VECTOR_TS = 1577262236757
VECTOR_SECRET = "this is secret"
VECTOR_SIGN = "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM="
T0 = VECTOR_TS / 1000  # a simulator clock at which the vector's timestamp is fresh
SIGNED = f"timestamp={VECTOR_TS}&sign={quote_plus(VECTOR_SIGN)}"

APP_KEY = "dingapp"
APP_SECRET = "app-secret-value"
AGENT_ID = 123456789


def text(content: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"msgtype": "text", "text": {"content": content}, **extra}


def markdown(title: str = "t", body: str = "b", **extra: Any) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"title": title, "text": body}, **extra}


def link(title: str = "t", body: str = "b") -> dict[str, Any]:
    return {
        "msgtype": "link",
        "link": {"title": title, "text": body, "messageUrl": "https://x", "picUrl": "https://p"},
    }


def action_card(title: str = "t", body: str = "b") -> dict[str, Any]:
    return {
        "msgtype": "actionCard",
        "actionCard": {"title": title, "text": body, "singleTitle": "go", "singleURL": "https://x"},
    }


def feed_card(*titles: str) -> dict[str, Any]:
    links = [{"title": t, "messageURL": "https://x", "picURL": "https://p"} for t in titles]
    return {"msgtype": "feedCard", "feedCard": {"links": links}}


def raw(body: dict[str, Any] | list[Any] | bytes) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()


def make_state(**kwargs: Any) -> tuple[SimulatorState, list[str]]:
    """A state with robots `plain`, `signed` (vector secret), `kw` (keyword 告警) and one app;
    the list collects the human log lines."""
    spec = SimulatorSpec(
        robots={
            "plain": RobotSpec(),
            "signed": RobotSpec(secret=VECTOR_SECRET),
            "kw": RobotSpec(keywords=["告警"]),
        },
        apps={APP_KEY: AppSpec(app_secret=APP_SECRET, agent_id=AGENT_ID)},
    )
    lines: list[str] = []
    return SimulatorState(spec, log=lines.append, **kwargs), lines


def send(
    state: SimulatorState,
    token: str,
    body: dict[str, Any] | list[Any] | bytes,
    *,
    now: float = T0,
    extra_query: str = "",
) -> tuple[int, dict[str, Any]]:
    """POST /robot/send, with the query decoded exactly as the WSGI layer decodes it."""
    query_string = f"access_token={quote_plus(token)}"
    if extra_query:
        query_string += f"&{extra_query}"
    return state.robot_send(now, parse_query(query_string), raw(body))


# --- the signing vector we rely on ---------------------------------------------------------------


def test_signing_vector_matches_reference() -> None:
    assert robot_sign(VECTOR_TS, VECTOR_SECRET) == VECTOR_SIGN


# --- robot webhook: every rejection path ---------------------------------------------------------

ROBOT_CASES: list[tuple[str, str, str, Any, float, int, str]] = [
    # (case id, token, extra query, body, now, expected errcode, expected errmsg fragment)
    ("unknown token", "nope", "", text(), T0, 300001, "token is not exist"),
    ("missing token", "", "", text(), T0, 300001, "token is not exist"),
    ("not json", "plain", "", b"{not json", T0, 40035, "JSON"),
    ("not utf-8", "plain", "", b'{"msgtype":"text","text":{"content":"\xff"}}', T0, 40035, "UTF-8"),
    ("array body", "plain", "", [text()], T0, 40035, "object"),
    ("empty body", "plain", "", b"", T0, 40035, "json"),
    ("sign missing", "signed", "", text(), T0, 310000, "sign not match"),
    (
        "sign without timestamp",
        "signed",
        f"sign={quote_plus(VECTOR_SIGN)}",
        text(),
        T0,
        310000,
        "sign not match",
    ),
    (
        "timestamp without sign",
        "signed",
        f"timestamp={VECTOR_TS}",
        text(),
        T0,
        310000,
        "sign not match",
    ),
    (
        "sign wrong",
        "signed",
        f"timestamp={VECTOR_TS}&sign={quote_plus(robot_sign(VECTOR_TS, 'x'))}",
        text(),
        T0,
        310000,
        "sign not match",
    ),
    (
        "sign of another timestamp",
        "signed",
        f"timestamp={VECTOR_TS}&sign={quote_plus(robot_sign(VECTOR_TS + 1, VECTOR_SECRET))}",
        text(),
        T0,
        310000,
        "sign not match",
    ),
    (
        "sign encoded twice",
        "signed",
        f"timestamp={VECTOR_TS}&sign={quote_plus(quote_plus(VECTOR_SIGN))}",
        text(),
        T0,
        310000,
        "sign not match",
    ),
    (
        "sign not encoded (+ decodes to space)",
        "signed",
        f"timestamp={VECTOR_TS}&sign={VECTOR_SIGN}",
        text(),
        T0,
        310000,
        "sign not match",
    ),
    (
        "timestamp stale by more than 1 h",
        "signed",
        SIGNED,
        text(),
        T0 + 3600.5,
        310000,
        "invalid timestamp",
    ),
    (
        "timestamp 1 h+ in the future",
        "signed",
        SIGNED,
        text(),
        T0 - 3600.5,
        310000,
        "invalid timestamp",
    ),
    (
        "timestamp in seconds",
        "signed",
        signed_query(VECTOR_TS // 1000, VECTOR_SECRET),
        text(),
        T0,
        310000,
        "invalid timestamp",
    ),
    (
        "timestamp not an integer",
        "signed",
        f"timestamp={VECTOR_TS}.0&sign={quote_plus(VECTOR_SIGN)}",
        text(),
        T0,
        310000,
        "invalid timestamp",
    ),
    ("sign checked before shape", "signed", "", {"msgtype": "nope"}, T0, 310000, "sign not match"),
    (
        "keywords checked after shape",
        "kw",
        "",
        {"msgtype": "text", "text": {}},
        T0,
        40035,
        "text.content",
    ),
]


@pytest.mark.parametrize(
    ("token", "extra_query", "body", "now", "errcode", "errmsg"),
    [case[1:] for case in ROBOT_CASES],
    ids=[case[0] for case in ROBOT_CASES],
)
def test_robot_rejections(
    token: str, extra_query: str, body: Any, now: float, errcode: int, errmsg: str
) -> None:
    state, _ = make_state()
    status, reply = send(state, token, body, now=now, extra_query=extra_query)
    assert status == 200  # DingTalk reports failures in the body, never in the HTTP status
    assert reply["errcode"] == errcode
    assert errmsg in reply["errmsg"]
    assert state.messages() == []
    assert state.requests()[-1]["errcode"] == errcode


@pytest.mark.parametrize(
    ("extra_query", "now"),
    [
        (SIGNED, T0),
        (SIGNED, T0 + 3599.9),  # still within the 1-hour skew window
        (SIGNED, T0 - 3599.9),
        # Letting the HTTP client encode the raw base64 once is just as correct.
        (f"timestamp={VECTOR_TS}&sign={quote(VECTOR_SIGN, safe='')}", T0),
    ],
    ids=["fresh", "59 min old", "59 min ahead", "percent-encoded once"],
)
def test_robot_signed_message_delivered(extra_query: str, now: float) -> None:
    state, _ = make_state()
    assert send(state, "signed", text(), now=now, extra_query=extra_query) == (
        200,
        {"errcode": 0, "errmsg": "ok"},
    )
    [message] = state.messages()
    assert (message["kind"], message["token"], message["msgtype"]) == ("robot", "signed", "text")
    assert message["body"] == text()
    assert message["time"] == now


def test_robot_signature_from_signing_helper_is_accepted() -> None:
    state, _ = make_state()
    ts = int(T0 * 1000) + 1234
    reply = send(state, "signed", text(), extra_query=signed_query(ts, VECTOR_SECRET))
    assert reply == (200, {"errcode": 0, "errmsg": "ok"})


def test_robot_size_limit_counts_raw_body_bytes() -> None:
    state, _ = make_state()
    overhead = len(raw(text("")))
    exact = raw(text("a" * (20000 - overhead)))
    assert len(exact) == 20000
    assert send(state, "plain", exact)[1]["errcode"] == 0
    too_long = raw(text("a" * (20001 - overhead)))
    assert len(too_long) == 20001
    assert send(state, "plain", too_long)[1] == {
        "errcode": 460101,
        "errmsg": "message too long, exceed 20000 bytes",
    }
    # CJK characters are 3 bytes each: 7000 characters is 21000 bytes.
    cjk = raw(text("告" * 7000))
    assert len(cjk.decode()) < 20000 < len(cjk)
    assert send(state, "plain", cjk)[1]["errcode"] == 460101
    assert len(state.messages()) == 1


# --- robot message shapes ------------------------------------------------------------------------

VALID_ROBOT_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("text", text("hi", at={"atMobiles": ["1"], "atUserIds": ["u"], "isAtAll": False})),
    ("markdown", markdown()),
    ("link", link()),
    (
        "link without picUrl",
        {"msgtype": "link", "link": {"title": "t", "text": "b", "messageUrl": "https://x"}},
    ),
    ("actionCard single", action_card()),
    (
        "actionCard btns",
        {
            "msgtype": "actionCard",
            "actionCard": {
                "title": "t",
                "text": "b",
                "btnOrientation": "1",
                "btns": [
                    {"title": "ok", "actionURL": "https://a"},
                    {"title": "no", "actionURL": "https://b"},
                ],
            },
        },
    ),
    ("feedCard", feed_card("one", "two")),
    ("at ignored for link", {**link(), "at": "not even an object"}),
]


@pytest.mark.parametrize(
    "body", [b for _, b in VALID_ROBOT_BODIES], ids=[i for i, _ in VALID_ROBOT_BODIES]
)
def test_robot_valid_shapes_delivered(body: dict[str, Any]) -> None:
    state, _ = make_state()
    assert send(state, "plain", body)[1] == {"errcode": 0, "errmsg": "ok"}
    assert state.messages()[0]["body"] == body


def _ac(**fields: Any) -> dict[str, Any]:
    return {"msgtype": "actionCard", "actionCard": {"title": "t", "text": "b", **fields}}


INVALID_ROBOT_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("msgtype missing", {"text": {"content": "x"}}, "msgtype"),
    ("msgtype unknown", {"msgtype": "image", "image": {"picURL": "x"}}, "msgtype"),
    ("work-notice spelling action_card", {"msgtype": "action_card", "action_card": {}}, "msgtype"),
    ("text object missing", {"msgtype": "text"}, "text"),
    ("text not an object", {"msgtype": "text", "text": "hi"}, "text"),
    ("text.content missing", {"msgtype": "text", "text": {}}, "text.content"),
    ("text.content not a string", {"msgtype": "text", "text": {"content": 5}}, "text.content"),
    ("text.content empty", {"msgtype": "text", "text": {"content": ""}}, "text.content"),
    (
        "markdown.title missing",
        {"msgtype": "markdown", "markdown": {"text": "b"}},
        "markdown.title",
    ),
    ("markdown.text missing", {"msgtype": "markdown", "markdown": {"title": "t"}}, "markdown.text"),
    (
        "link.messageUrl missing",
        {"msgtype": "link", "link": {"title": "t", "text": "b"}},
        "link.messageUrl",
    ),
    (
        "link with feedCard casing messageURL",
        {"msgtype": "link", "link": {"title": "t", "text": "b", "messageURL": "https://x"}},
        "link.messageUrl",
    ),
    (
        "link.picUrl not a string",
        {
            "msgtype": "link",
            "link": {"title": "t", "text": "b", "messageUrl": "https://x", "picUrl": 1},
        },
        "link.picUrl",
    ),
    (
        "link.title missing",
        {"msgtype": "link", "link": {"text": "b", "messageUrl": "u"}},
        "link.title",
    ),
    ("actionCard without buttons", _ac(), "actionCard.btns"),
    ("actionCard singleTitle without singleURL", _ac(singleTitle="go"), "actionCard.singleURL"),
    (
        "actionCard singleUrl casing",
        _ac(singleTitle="go", singleUrl="https://x"),
        "actionCard.singleURL",
    ),
    ("actionCard btns empty", _ac(btns=[]), "actionCard.btns"),
    (
        "actionCard btn missing actionURL",
        _ac(btns=[{"title": "ok", "actionUrl": "u"}]),
        "actionCard.btns[0].actionURL",
    ),
    (
        "actionCard btnOrientation invalid",
        _ac(btnOrientation="2", singleTitle="a", singleURL="u"),
        "btnOrientation",
    ),
    (
        "actionCard text missing",
        {
            "msgtype": "actionCard",
            "actionCard": {"title": "t", "singleTitle": "a", "singleURL": "u"},
        },
        "actionCard.text",
    ),
    ("feedCard links missing", {"msgtype": "feedCard", "feedCard": {}}, "feedCard.links"),
    ("feedCard links empty", {"msgtype": "feedCard", "feedCard": {"links": []}}, "feedCard.links"),
    (
        "feedCard link with link casing",
        {
            "msgtype": "feedCard",
            "feedCard": {"links": [{"title": "t", "messageUrl": "u", "picUrl": "p"}]},
        },
        "feedCard.links[0].messageURL",
    ),
    (
        "feedCard link missing picURL",
        {"msgtype": "feedCard", "feedCard": {"links": [{"title": "t", "messageURL": "u"}]}},
        "feedCard.links[0].picURL",
    ),
    ("at.atMobiles not a list", text(at={"atMobiles": "138"}), "at.atMobiles"),
    ("at.atUserIds not strings", markdown(at={"atUserIds": [1]}), "at.atUserIds"),
    ("at.isAtAll not a bool", text(at={"isAtAll": "true"}), "at.isAtAll"),
]


@pytest.mark.parametrize(
    ("body", "field"),
    [(b, f) for _, b, f in INVALID_ROBOT_BODIES],
    ids=[i for i, _, _ in INVALID_ROBOT_BODIES],
)
def test_robot_invalid_shapes_rejected(body: dict[str, Any], field: str) -> None:
    state, _ = make_state()
    status, reply = send(state, "plain", body)
    assert status == 200
    assert reply["errcode"] == 40035
    assert field in reply["errmsg"]
    assert state.messages() == []


# --- keywords ------------------------------------------------------------------------------------

KEYWORD_CASES: list[tuple[str, dict[str, Any], int]] = [
    ("text content", text("[告警] CPU"), 0),
    ("text without keyword", text("CPU high"), 310000),
    ("markdown title only", markdown(title="告警", body="CPU"), 0),
    ("markdown text only", markdown(title="x", body="### 告警"), 0),
    ("markdown without keyword", markdown(title="x", body="y"), 310000),
    ("link title", link(title="告警"), 0),
    ("link text", link(body="告警"), 0),
    (
        "link keyword only in messageUrl",
        {"msgtype": "link", "link": {"title": "t", "text": "b", "messageUrl": "https://x/告警"}},
        310000,
    ),
    ("actionCard title", action_card(title="告警"), 0),
    ("actionCard text", action_card(body="告警"), 0),
    ("actionCard keyword only in singleTitle", _ac(singleTitle="告警", singleURL="u"), 310000),
    ("feedCard second link title", feed_card("one", "二 告警"), 0),
    ("feedCard without keyword", feed_card("one", "two"), 310000),
    ("keyword only in at", text("x", at={"atUserIds": ["告警"]}), 310000),
]


@pytest.mark.parametrize(
    ("body", "errcode"), [(b, e) for _, b, e in KEYWORD_CASES], ids=[i for i, _, _ in KEYWORD_CASES]
)
def test_robot_keywords_per_msgtype(body: dict[str, Any], errcode: int) -> None:
    state, _ = make_state()
    reply = send(state, "kw", body)[1]
    assert reply["errcode"] == errcode
    if errcode:
        assert reply["errmsg"] == "keywords not in content"
    assert len(state.messages()) == (0 if errcode else 1)


def test_robot_with_secret_and_keywords_needs_both() -> None:
    state = SimulatorState(
        SimulatorSpec(robots={"both": RobotSpec(secret=VECTOR_SECRET, keywords=["告警"])})
    )
    assert send(state, "both", text("告警"))[1]["errmsg"] == "sign not match"
    assert send(state, "both", text("nope"), extra_query=SIGNED)[1]["errcode"] == 310000
    assert send(state, "both", text("告警"), extra_query=SIGNED)[1]["errcode"] == 0


# --- rate limit and lockout ----------------------------------------------------------------------


def test_21st_message_in_a_minute_locks_robot_out_for_600_seconds() -> None:
    state, _ = make_state()
    for i in range(20):
        assert send(state, "plain", text(f"m{i}"), now=T0 + i)[1]["errcode"] == 0
    breach = T0 + 20
    assert send(state, "plain", text("m20"), now=breach)[1] == {
        "errcode": 130101,
        "errmsg": "send too fast, exceed 20 times per minute",
    }
    # Locked out: even long after the 60 s window has emptied, until 600 s from the breach.
    for later in (breach + 1, breach + 120, breach + 599.9):
        assert send(state, "plain", text("during lockout"), now=later)[1]["errcode"] == 130101
    assert send(state, "plain", text("after lockout"), now=breach + 600)[1]["errcode"] == 0
    delivered = [m["body"]["text"]["content"] for m in state.messages()]
    assert delivered == [f"m{i}" for i in range(20)] + ["after lockout"]
    assert state.stats()["robots"]["plain"] == {
        "delivered": 21,
        "rejected": {"130101": 4},
        "faulted": 0,
    }


def test_lockout_is_checked_before_everything_but_the_token() -> None:
    state, _ = make_state()
    for i in range(21):
        send(state, "plain", text(f"m{i}"), now=T0)
    assert send(state, "plain", b"not json", now=T0 + 1)[1]["errcode"] == 130101
    assert send(state, "plain", b"x" * 20001, now=T0 + 1)[1]["errcode"] == 130101
    assert send(state, "unknown", text(), now=T0 + 1)[1]["errcode"] == 300001


def test_rate_window_slides_rather_than_resetting_each_minute() -> None:
    state, _ = make_state()
    start = 1_700_000_040.0  # 40 s into a calendar minute
    for _ in range(20):
        assert send(state, "plain", text(), now=start)[1]["errcode"] == 0
    # 30 s later a new calendar minute has begun, but 20 messages are still inside the last 60 s.
    assert send(state, "plain", text(), now=start + 30)[1]["errcode"] == 130101


def test_rate_window_forgets_messages_older_than_60_seconds() -> None:
    state, _ = make_state()
    for i in range(10):
        send(state, "plain", text(), now=T0 + i * 0.1)
    for i in range(10):
        send(state, "plain", text(), now=T0 + 30 + i * 0.1)
    # At T0+60.95 the first ten have left the window: ten more fit, the eleventh does not.
    for _ in range(10):
        assert send(state, "plain", text(), now=T0 + 60.95)[1]["errcode"] == 0
    assert send(state, "plain", text(), now=T0 + 60.95)[1]["errcode"] == 130101
    assert len(state.messages()) == 30


def test_rejected_messages_do_not_use_up_the_rate_budget() -> None:
    state, _ = make_state()
    for _ in range(25):
        assert send(state, "kw", text("no keyword"))[1]["errcode"] == 310000
    for _ in range(20):
        assert send(state, "kw", text("告警"))[1]["errcode"] == 0


@pytest.mark.parametrize(
    ("robot", "default", "allowed"),
    [
        (RobotSpec(rate_per_minute=3), 20, 3),
        (RobotSpec(), 5, 5),  # the simulator-wide default (--rate-per-minute)
        (RobotSpec(rate_per_minute=0), 20, 200),  # 0 disables the limit
        (RobotSpec(), 0, 200),
    ],
    ids=["per-robot", "simulator default", "robot unlimited", "default unlimited"],
)
def test_rate_per_minute_configuration(robot: RobotSpec, default: int, allowed: int) -> None:
    state = SimulatorState(SimulatorSpec(robots={"r": robot}), default_rate_per_minute=default)
    replies = [send(state, "r", text())[1]["errcode"] for _ in range(200)]
    assert replies[:allowed] == [0] * allowed
    assert set(replies[allowed:]) <= {130101}
    assert len(state.messages()) == allowed


def test_custom_lockout_seconds() -> None:
    state = SimulatorState(
        SimulatorSpec(robots={"r": RobotSpec(rate_per_minute=1, lockout_seconds=30)})
    )
    assert send(state, "r", text(), now=T0)[1]["errcode"] == 0
    assert send(state, "r", text(), now=T0 + 1)[1]["errcode"] == 130101
    assert send(state, "r", text(), now=T0 + 30.9)[1]["errcode"] == 130101
    assert send(state, "r", text(), now=T0 + 61)[1]["errcode"] == 0


# --- mentions ------------------------------------------------------------------------------------


def test_text_mentions_highlighted_only_when_at_text_present() -> None:
    state, lines = make_state()
    body = text(
        "CPU high @13800000000 @user1",
        at={"atMobiles": ["13800000000", "13900000000"], "atUserIds": ["user1", "user2"]},
    )
    assert send(state, "plain", body)[1]["errcode"] == 0
    assert state.messages()[0]["mentions"] == {
        "mobiles": ["13800000000", "13900000000"],
        "userids": ["user1", "user2"],
        "highlighted_mobiles": ["13800000000"],
        "highlighted_userids": ["user1"],
        "all": False,
    }
    assert "@13800000000" in lines[-1]
    assert "@13900000000(not highlighted" in lines[-1]


def test_markdown_mentions_must_be_in_text_not_title() -> None:
    state, _ = make_state()
    body = markdown(
        title="@13800000000",
        body="disk full @13900000000",
        at={"atMobiles": ["13800000000", "13900000000"], "isAtAll": True},
    )
    send(state, "plain", body)
    mentions = state.messages()[0]["mentions"]
    assert mentions["highlighted_mobiles"] == ["13900000000"]
    assert mentions["all"] is True


def test_mentions_ignored_for_other_msgtypes() -> None:
    state, _ = make_state()
    send(state, "plain", {**link(title="@138"), "at": {"atMobiles": ["138"], "isAtAll": True}})
    assert state.messages()[0]["mentions"] == {
        "mobiles": [],
        "userids": [],
        "highlighted_mobiles": [],
        "highlighted_userids": [],
        "all": False,
    }


# --- unknown robots, logs, secrets ---------------------------------------------------------------


def test_accept_unknown_robots_auto_registers_plain_robot() -> None:
    state, _ = make_state(accept_unknown_robots=True, default_rate_per_minute=2)
    assert send(state, "brand-new", text())[1]["errcode"] == 0
    assert state.robots()["brand-new"] == {
        "has_secret": False,
        "keywords": [],
        "rate_per_minute": 2,
        "lockout_seconds": 600.0,
    }
    send(state, "brand-new", text())
    assert send(state, "brand-new", text())[1]["errcode"] == 130101
    # An empty token is still unknown.
    assert send(state, "", text())[1]["errcode"] == 300001


def test_every_request_logged_without_secrets() -> None:
    state, lines = make_state()
    send(state, "signed", text("ok"), extra_query=SIGNED)
    send(state, "signed", text("bad"))
    send(state, "kw", text("nope"))
    state.gettoken(T0, {"appkey": APP_KEY, "appsecret": "wrong-guess"})
    state.gettoken(T0, {"appkey": APP_SECRET, "appsecret": APP_KEY})  # swapped by mistake
    requests_seen = state.requests()
    assert [(r["path"], r["errcode"]) for r in requests_seen] == [
        ("/robot/send", 0),
        ("/robot/send", 310000),
        ("/robot/send", 310000),
        ("/gettoken", 40089),
        ("/gettoken", 40089),
    ]
    assert [r["delivered"] for r in requests_seen] == [True, False, False, False, False]
    dumped = json.dumps(
        [requests_seen, state.messages(), state.stats(), state.robots(), state.apps()],
        ensure_ascii=False,
    ) + "\n".join(lines)
    for secret in (VECTOR_SECRET, APP_SECRET, "wrong-guess", VECTOR_SIGN):
        assert secret not in dumped
    # Human lines show tokens masked: at most 4 characters, and never more than half of one.
    assert lines[0].startswith("robot sig… text")
    assert "rejected robot sig… 310000 sign not match" in lines
    assert all("signed" not in line for line in lines)


def test_messages_since_and_token_filters() -> None:
    state, _ = make_state()
    for token in ("plain", "kw", "plain"):
        send(state, token, text("告警"))
    assert [m["index"] for m in state.messages(since=1)] == [1, 2]
    assert [m["index"] for m in state.messages(token="plain")] == [0, 2]
    assert [m["index"] for m in state.messages(since=1, token="plain")] == [2]


# --- access tokens -------------------------------------------------------------------------------


def gettoken(state: SimulatorState, now: float, secret: str = APP_SECRET) -> dict[str, Any]:
    status, reply = state.gettoken(now, {"appkey": APP_KEY, "appsecret": secret})
    assert status == 200
    return reply


@pytest.mark.parametrize(
    "query",
    [
        {"appkey": "unknown", "appsecret": APP_SECRET},
        {"appkey": APP_KEY, "appsecret": "wrong"},
        {"appkey": APP_KEY},
        {},
    ],
    ids=["unknown appkey", "wrong secret", "missing secret", "nothing"],
)
def test_gettoken_rejects_bad_credentials(query: dict[str, str]) -> None:
    state, _ = make_state()
    assert state.gettoken(T0, query) == (
        200,
        {"errcode": 40089, "errmsg": "不合法的corpid或corpsecret"},
    )


def test_gettoken_same_token_within_validity_renews_and_new_after_expiry() -> None:
    state, _ = make_state()
    first = gettoken(state, T0)
    assert first["errcode"] == 0
    assert first["expires_in"] == 7200
    token = first["access_token"]
    # Same token while valid, and each call renews it to a full 7200 s.
    again = gettoken(state, T0 + 7000)
    assert (again["access_token"], again["expires_in"]) == (token, 7200)
    assert gettoken(state, T0 + 7000 + 7199)["access_token"] == token
    # Not renewed for 7200 s: expired, so a new token is issued.
    renewed_at = T0 + 7000 + 7199
    fresh = gettoken(state, renewed_at + 7200)["access_token"]
    assert fresh != token
    assert state.stats()["apps"][APP_KEY]["gettoken"] == 4
    assert state.stats()["apps"][APP_KEY]["tokens_issued"] == 2
    assert state.stats()["gettoken_calls"] == 4


# --- work notifications --------------------------------------------------------------------------


def notice(msg: Any = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"agent_id": AGENT_ID, "userid_list": "user1"}
    body["msg"] = msg if msg is not None else {"msgtype": "text", "text": {"content": "hi"}}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def asyncsend(
    state: SimulatorState, token: str, body: dict[str, Any] | bytes, now: float = T0
) -> dict[str, Any]:
    status, reply = state.asyncsend(now, {"access_token": token}, raw(body))
    assert status == 200
    return reply


def authed_state() -> tuple[SimulatorState, str]:
    state, _ = make_state()
    return state, gettoken(state, T0)["access_token"]


def test_asyncsend_token_errors() -> None:
    state, token = authed_state()
    assert asyncsend(state, "", notice())["errcode"] == 40014
    assert asyncsend(state, "made-up", notice()) == {
        "errcode": 40014,
        "errmsg": "不合法的access_token",
    }
    assert asyncsend(state, token, notice(), now=T0 + 7199)["errcode"] == 0
    assert asyncsend(state, token, notice(), now=T0 + 7200) == {
        "errcode": 42001,
        "errmsg": "access_token超时",
    }


def test_expire_tokens_makes_next_send_fail_with_42001_then_refresh_works() -> None:
    state, token = authed_state()
    assert state.expire_tokens(T0 + 10, APP_KEY) == 1
    assert asyncsend(state, token, notice(), now=T0 + 10)["errcode"] == 42001
    new_token = gettoken(state, T0 + 11)["access_token"]
    assert new_token != token
    assert asyncsend(state, new_token, notice(), now=T0 + 12)["errcode"] == 0
    with pytest.raises(KeyError):
        state.expire_tokens(T0, "no-such-app")


NOTICE_REJECTIONS: list[tuple[str, dict[str, Any] | bytes, int, str]] = [
    ("not json", b"agent_id=1", 40035, "JSON"),
    ("agent_id missing", notice(agent_id=None), 40035, "agent_id"),
    ("agent_id a string", notice(agent_id=str(AGENT_ID)), 40035, "agentId"),
    ("agent_id a bool", notice(agent_id=True), 40035, "agentId"),
    ("agent_id of another app", notice(agent_id=1), 40035, "agentId"),
    ("userid_list as array", notice(userid_list=["user1", "user2"]), 40035, "userid_list"),
    ("dept_id_list as array", notice(userid_list=None, dept_id_list=[1, 2]), 40035, "dept_id_list"),
    ("to_all_user not a bool", notice(to_all_user="true"), 40035, "to_all_user"),
    ("no recipient", notice(userid_list=None), 1430000, "接受者为空"),
    ("empty userid_list", notice(userid_list=" , "), 1430000, "接受者为空"),
    ("to_all_user false only", notice(userid_list=None, to_all_user=False), 1430000, "接受者为空"),
    ("msg missing", {"agent_id": AGENT_ID, "userid_list": "u"}, 40035, "msg"),
    ("msg as a string", notice(msg='{"msgtype":"text"}'), 40035, "msg"),
    ("msgtype missing", notice({"text": {"content": "x"}}), 40035, "msg.msgtype"),
    (
        "robot camelCase actionCard",
        notice(
            {
                "msgtype": "actionCard",
                "actionCard": {
                    "title": "t",
                    "markdown": "m",
                    "single_title": "a",
                    "single_url": "u",
                },
            }
        ),
        40035,
        "action_card",
    ),
    ("robot-only feedCard", notice({"msgtype": "feedCard", "feedCard": {}}), 40035, "msg.msgtype"),
    ("text.content missing", notice({"msgtype": "text", "text": {}}), 40035, "msg.text.content"),
    (
        "markdown.text missing",
        notice({"msgtype": "markdown", "markdown": {"title": "t"}}),
        40035,
        "msg.markdown.text",
    ),
    (
        "link.picUrl missing",
        notice({"msgtype": "link", "link": {"messageUrl": "u", "title": "t", "text": "b"}}),
        40035,
        "msg.link.picUrl",
    ),
    (
        "action_card with robot's text field",
        notice(
            {
                "msgtype": "action_card",
                "action_card": {"title": "t", "text": "b", "single_title": "a", "single_url": "u"},
            }
        ),
        40035,
        "msg.action_card.markdown",
    ),
    (
        "action_card single_title without single_url",
        notice(
            {
                "msgtype": "action_card",
                "action_card": {"title": "t", "markdown": "m", "single_title": "a"},
            }
        ),
        40035,
        "msg.action_card.single_url",
    ),
    (
        "action_card robot casing singleURL",
        notice(
            {
                "msgtype": "action_card",
                "action_card": {
                    "title": "t",
                    "markdown": "m",
                    "singleTitle": "a",
                    "singleURL": "u",
                },
            }
        ),
        40035,
        "btn_json_list",
    ),
    (
        "action_card btn_json_list without btn_orientation",
        notice(
            {
                "msgtype": "action_card",
                "action_card": {
                    "title": "t",
                    "markdown": "m",
                    "btn_json_list": [{"title": "a", "action_url": "u"}],
                },
            }
        ),
        40035,
        "btn_orientation",
    ),
    (
        "action_card btn with robot casing actionURL",
        notice(
            {
                "msgtype": "action_card",
                "action_card": {
                    "title": "t",
                    "markdown": "m",
                    "btn_orientation": "0",
                    "btn_json_list": [{"title": "a", "actionURL": "u"}],
                },
            }
        ),
        40035,
        "btn_json_list[0].action_url",
    ),
    (
        "oa without head",
        notice({"msgtype": "oa", "oa": {"body": {"title": "t"}}}),
        40035,
        "msg.oa.head",
    ),
    (
        "image without media_id",
        notice({"msgtype": "image", "image": {}}),
        40035,
        "msg.image.media_id",
    ),
]


@pytest.mark.parametrize(
    ("body", "errcode", "errmsg"),
    [case[1:] for case in NOTICE_REJECTIONS],
    ids=[case[0] for case in NOTICE_REJECTIONS],
)
def test_asyncsend_rejections(body: dict[str, Any] | bytes, errcode: int, errmsg: str) -> None:
    state, token = authed_state()
    reply = asyncsend(state, token, body)
    assert reply["errcode"] == errcode
    assert errmsg in reply["errmsg"]
    assert state.messages() == []


VALID_NOTICE_MSGS: list[tuple[str, dict[str, Any]]] = [
    ("text", {"msgtype": "text", "text": {"content": "hi"}}),
    ("markdown", {"msgtype": "markdown", "markdown": {"title": "t", "text": "### x"}}),
    (
        "link",
        {"msgtype": "link", "link": {"messageUrl": "u", "picUrl": "p", "title": "t", "text": "b"}},
    ),
    (
        "action_card single",
        {
            "msgtype": "action_card",
            "action_card": {"title": "t", "markdown": "m", "single_title": "a", "single_url": "u"},
        },
    ),
    (
        "action_card buttons",
        {
            "msgtype": "action_card",
            "action_card": {
                "title": "t",
                "markdown": "m",
                "btn_orientation": "1",
                "btn_json_list": [{"title": "a", "action_url": "u"}],
            },
        },
    ),
    ("oa", {"msgtype": "oa", "oa": {"head": {"text": "h"}, "body": {"title": "t"}}}),
    ("image", {"msgtype": "image", "image": {"media_id": "@lA"}}),
    ("file", {"msgtype": "file", "file": {"media_id": "@lB"}}),
    ("voice", {"msgtype": "voice", "voice": {"media_id": "@lC", "duration": "10"}}),
]


@pytest.mark.parametrize(
    "msg", [m for _, m in VALID_NOTICE_MSGS], ids=[i for i, _ in VALID_NOTICE_MSGS]
)
def test_asyncsend_valid_msgtypes_delivered(msg: dict[str, Any]) -> None:
    state, token = authed_state()
    reply = asyncsend(state, token, notice(msg, userid_list="user1,user2"))
    assert reply["errcode"] == 0
    assert isinstance(reply["task_id"], int)
    assert reply["request_id"]
    [message] = state.messages()
    assert message["kind"] == "work_notice"
    assert message["app_key"] == APP_KEY
    assert message["msgtype"] == msg["msgtype"]
    assert message["recipients"] == ["user1", "user2"]
    assert message["task_id"] == reply["task_id"]


def test_asyncsend_recipients_via_departments_or_everyone() -> None:
    state, token = authed_state()
    first = asyncsend(state, token, notice(userid_list=None, dept_id_list="1,2"))
    second = asyncsend(state, token, notice(userid_list=None, to_all_user=True))
    assert first["errcode"] == second["errcode"] == 0
    assert second["task_id"] > first["task_id"]
    messages = state.messages()
    assert messages[0]["dept_id_list"] == ["1", "2"]
    assert messages[1]["to_all_user"] is True


def test_duplicate_work_notice_same_user_same_day_is_forbidden() -> None:
    state, token = authed_state()
    msg = {"msgtype": "text", "text": {"content": "disk full"}}
    first = asyncsend(state, token, notice(msg, userid_list="user1"))
    # Same content (keys in another order) to user1 and a new user2: still errcode 0, but user1
    # is silently dropped.
    reordered = {"text": {"content": "disk full"}, "msgtype": "text"}
    second = asyncsend(state, token, notice(reordered, userid_list="user1,user2"), now=T0 + 60)
    assert first["errcode"] == second["errcode"] == 0
    assert second["task_id"] > first["task_id"]
    message = state.messages()[1]
    assert (message["recipients"], message["forbidden"]) == (["user2"], ["user1"])

    status, result = state.getsendresult(
        T0 + 61,
        {"access_token": token},
        raw({"agent_id": AGENT_ID, "task_id": second["task_id"]}),
    )
    assert status == 200 and result["errcode"] == 0
    send_result = result["send_result"]
    assert send_result["forbidden_user_id_list"] == ["user1"]
    assert send_result["unread_user_id_list"] == ["user2"]
    assert send_result["forbidden_list"] == [{"code": "143106", "count": 1, "userid": "user1"}]
    for key in (
        "invalid_user_id_list",
        "failed_user_id_list",
        "read_user_id_list",
        "invalid_dept_id_list",
    ):
        assert send_result[key] == []

    # Different content is delivered; the same content the next day (DingTalk's day, China's:
    # T0 is 16:23 there, so the next UTC midnight is already the next day) is delivered again.
    other = {"msgtype": "text", "text": {"content": "disk full (2)"}}
    asyncsend(state, token, notice(other, userid_list="user1"), now=T0 + 62)
    assert state.messages()[2]["recipients"] == ["user1"]
    next_day = (T0 // 86400 + 1) * 86400 + 1
    token2 = gettoken(state, next_day)["access_token"]
    asyncsend(state, token2, notice(msg, userid_list="user1"), now=next_day)
    assert state.messages()[3]["recipients"] == ["user1"]


def test_getsendresult_errors() -> None:
    state, token = authed_state()
    task_id = asyncsend(state, token, notice())["task_id"]

    def result(body: dict[str, Any], tok: str = token) -> dict[str, Any]:
        return state.getsendresult(T0, {"access_token": tok}, raw(body))[1]

    assert result({"agent_id": AGENT_ID, "task_id": task_id})["errcode"] == 0
    assert result({"agent_id": AGENT_ID, "task_id": task_id + 100})["errcode"] == 40035
    assert result({"agent_id": 1, "task_id": task_id})["errcode"] == 40035
    assert result({"agent_id": AGENT_ID, "task_id": task_id}, "bogus")["errcode"] == 40014


def test_work_notice_stats_count_calls() -> None:
    state, token = authed_state()
    for i in range(5):
        asyncsend(state, token, notice({"msgtype": "text", "text": {"content": f"m{i}"}}))
    asyncsend(state, token, notice(userid_list=["x"]))
    stats = state.stats()
    assert stats["asyncsend_calls"] == 6
    assert stats["apps"][APP_KEY]["asyncsend"] == 6
    assert stats["apps"][APP_KEY]["asyncsend_ok"] == 5
    assert stats["apps"][APP_KEY]["gettoken"] == 1  # one token fetch for many messages


# --- faults, reset, spec -------------------------------------------------------------------------


def test_faults_consumed_in_order_with_path_and_token_filters() -> None:
    state, _ = make_state()
    state.add_fault({"path": "/robot/send", "token": "kw", "count": 2, "action": {"errcode": -1}})
    state.add_fault({"path": "/gettoken", "action": {"http_status": 503}})
    assert state.take_fault(T0, "/robot/send", {"access_token": "plain"}) is None
    first = state.take_fault(T0, "/robot/send", {"access_token": "kw"})
    assert first is not None and (first.errcode, first.errmsg) == (-1, "系统繁忙")
    assert state.take_fault(T0, "/robot/send", {"access_token": "kw"}) is not None
    assert state.take_fault(T0, "/robot/send", {"access_token": "kw"}) is None  # count used up
    gettoken_fault = state.take_fault(T0, "/gettoken", {"appkey": APP_KEY})
    assert gettoken_fault is not None and gettoken_fault.http_status == 503
    assert state.faults() == []
    logged = state.requests()
    assert [(r["path"], r["errcode"], r["http_status"], r["delivered"]) for r in logged] == [
        ("/robot/send", -1, 200, False),
        ("/robot/send", -1, 200, False),
        ("/gettoken", None, 503, False),
    ]
    assert state.stats()["robots"]["kw"]["faulted"] == 2
    assert state.stats()["apps"][APP_KEY]["gettoken"] == 1
    assert state.messages() == []


def test_fault_token_filter_matches_app_key_for_topapi_calls() -> None:
    state, token = authed_state()
    state.add_fault(
        {
            "path": "/topapi/message/corpconversation/asyncsend_v2",
            "token": APP_KEY,
            "action": {"close": True},
        }
    )
    fault = state.take_fault(
        T0, "/topapi/message/corpconversation/asyncsend_v2", {"access_token": token}
    )
    assert fault is not None and fault.kind == "close"


@pytest.mark.parametrize(
    "definition",
    [
        {"action": {"http_status": 500}},
        {"path": "/robot/send"},
        {"path": "/robot/send", "action": {"http_status": 99}},
        {"path": "/robot/send", "action": {"http_status": 500, "close": True}},
        {"path": "/robot/send", "action": {"close": False}},
        {"path": "/robot/send", "action": {"delay": -1}},
        {"path": "/robot/send", "count": 0, "action": {"non_json": True}},
        {"path": "/robot/send", "action": {"errcode": 1}, "typo": 1},
    ],
)
def test_invalid_fault_definitions_rejected(definition: dict[str, Any]) -> None:
    state, _ = make_state()
    with pytest.raises(FaultError):
        state.add_fault(definition)


def test_reset_clears_traffic_but_keeps_registrations() -> None:
    state, token = authed_state()
    for _ in range(21):
        send(state, "plain", text())
    state.add_fault({"path": "/robot/send", "action": {"http_status": 500}})
    state.reset()
    assert (state.messages(), state.requests(), state.faults()) == ([], [], [])
    assert state.stats()["robots"] == {}
    assert send(state, "plain", text())[1]["errcode"] == 0  # lockout and fault gone
    assert asyncsend(state, token, notice())["errcode"] == 40014  # tokens forgotten
    assert set(state.robots()) == {"plain", "signed", "kw"}
    assert set(state.apps()) == {APP_KEY}


def test_spec_loading_from_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "spec.yaml"
    yaml_file.write_text(
        "robots:\n"
        "  demo-ops: {secret: SECabc, keywords: [告警], rate_per_minute: 5, lockout_seconds: 60}\n"
        "  12345: {}\n"
        "apps:\n"
        "  dingkey: {app_secret: s, agent_id: 42, token_ttl: 100}\n",
        encoding="utf-8",
    )
    spec = load_spec(yaml_file)
    assert spec.robots["demo-ops"] == RobotSpec("SECabc", ("告警",), 5, 60.0)
    assert spec.robots["12345"] == RobotSpec()  # YAML int keys become string tokens
    assert spec.apps["dingkey"] == AppSpec(app_secret="s", agent_id=42, token_ttl=100.0)
    json_file = tmp_path / "spec.json"
    json_file.write_text(json.dumps({"robots": {"r": {"keywords": ["x"]}}}), encoding="utf-8")
    assert load_spec(json_file).robots == {"r": RobotSpec(keywords=("x",))}
    assert RobotSpec().rate_per_minute is None  # "use the simulator's default (20)"


@pytest.mark.parametrize(
    "data",
    [
        {"robot": {}},
        {"robots": {"r": {"keyword": ["x"]}}},
        {"robots": {"r": {"keywords": "x"}}},
        {"robots": {"r": {"keywords": [str(i) for i in range(11)]}}},
        {"robots": {"r": {"rate_per_minute": -1}}},
        {"apps": {"a": {"app_secret": "s"}}},
        {"apps": {"a": {"app_secret": "s", "agent_id": "1"}}},
        {"apps": {"a": {"agent_id": 1}}},
        [],
    ],
)
def test_invalid_specs_rejected(data: Any) -> None:
    with pytest.raises(SpecError):
        SimulatorSpec.from_dict(data)


# --- over real sockets ---------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    spec = SimulatorSpec(
        robots={"demo-ops": RobotSpec(secret=VECTOR_SECRET)},
        apps={APP_KEY: AppSpec(app_secret=APP_SECRET, agent_id=AGENT_ID)},
    )
    with serve_in_thread("127.0.0.1:0", SimulatorState(spec)) as running:
        yield running


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def _signed_url(base: str, token: str = "demo-ops") -> str:
    # Signed with the real clock; the in-thread and subprocess simulators use it too.
    query = signed_query(int(time.time() * 1000), VECTOR_SECRET)
    return f"{base}/robot/send?access_token={token}&{query}"


def test_http_sign_decoded_exactly_once(server: SimulatorServer, http: requests.Session) -> None:
    ts = int(time.time() * 1000)
    sign = robot_sign(ts, VECTOR_SECRET)
    base = f"{server.url}/robot/send?access_token=demo-ops&timestamp={ts}"
    assert http.post(f"{base}&sign={quote_plus(sign)}", json=text()).json()["errcode"] == 0
    # The classic bug: encoding by hand, then letting the client's params builder encode again.
    twice = http.post(base, params={"sign": quote_plus(sign)}, json=text())
    assert twice.json() == {"errcode": 310000, "errmsg": "sign not match"}
    # Raw base64 as the params value is encoded once by the client: fine.
    assert http.post(base, params={"sign": sign}, json=text()).json()["errcode"] == 0


def test_http_control_api(server: SimulatorServer, http: requests.Session) -> None:
    url = server.url
    registered = http.post(f"{url}/_sim/robots", json={"ops2": {"keywords": ["告警"]}})
    assert registered.status_code == 200
    assert registered.json()["robots"]["ops2"]["keywords"] == ["告警"]
    assert "secret" not in json.dumps(registered.json()["robots"]["demo-ops"]).replace(
        "has_secret", ""
    )
    bad = http.post(f"{url}/_sim/robots", json={"ops3": {"keyword": "x"}})
    assert bad.status_code == 400 and "keyword" in bad.json()["error"]

    reply = http.post(f"{url}/robot/send?access_token=ops2", json=text("<script>告警</script>"))
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.json() == {"errcode": 0, "errmsg": "ok"}
    http.post(f"{url}/robot/send?access_token=ops2", json=text("no keyword"))
    http.post(_signed_url(url), json=markdown("FIRING", "disk"))

    messages = http.get(f"{url}/_sim/messages", params={"token": "ops2"}).json()["messages"]
    assert [m["body"]["text"]["content"] for m in messages] == ["<script>告警</script>"]
    assert len(http.get(f"{url}/_sim/messages", params={"since": 1}).json()["messages"]) == 1
    logged = http.get(f"{url}/_sim/requests").json()["requests"]
    assert [r["errcode"] for r in logged] == [0, 310000, 0]
    stats = http.get(f"{url}/_sim/stats").json()
    assert stats["robots"]["ops2"] == {"delivered": 1, "rejected": {"310000": 1}, "faulted": 0}

    page = http.get(f"{url}/")
    assert page.headers["Content-Type"].startswith("text/html")
    assert "&lt;script&gt;告警&lt;/script&gt;" in page.text
    assert "<script>" not in page.text
    assert page.text.index("FIRING") < page.text.index("&lt;script&gt;")  # newest first
    assert "demo-ops" not in page.text  # tokens are masked

    assert http.post(f"{url}/_sim/reset").json() == {"ok": True}
    assert http.get(f"{url}/_sim/messages").json() == {"messages": []}
    assert "ops2" in http.get(f"{url}/_sim/robots").json()["robots"]
    assert http.get(f"{url}/_sim/nope").status_code == 404


def test_http_tokens_expiry_and_clock(server: SimulatorServer, http: requests.Session) -> None:
    url = server.url
    got = http.get(f"{url}/gettoken", params={"appkey": APP_KEY, "appsecret": APP_SECRET}).json()
    token = got["access_token"]
    send_url = f"{url}/topapi/message/corpconversation/asyncsend_v2?access_token={token}"
    assert http.post(send_url, json=notice()).json()["errcode"] == 0
    page = http.get(f"{url}/").text
    assert f"work notice from {APP_KEY}" in page and "to: user1" in page
    expired = http.post(f"{url}/_sim/apps/{APP_KEY}/expire-tokens").json()
    assert expired == {"expired": 1}
    assert http.post(send_url, json=notice()).json()["errcode"] == 42001
    assert http.post(f"{url}/_sim/apps/nope/expire-tokens").status_code == 404

    # The clock can be moved forward, e.g. past a robot lockout.
    for _ in range(21):
        http.post(_signed_url(url), json=text())
    assert http.post(_signed_url(url), json=text()).json()["errcode"] == 130101
    http.post(f"{url}/_sim/clock", json={"advance": 601})
    # Our signature now looks 10 minutes old: still within the 1-hour window.
    assert http.post(_signed_url(url), json=text()).json()["errcode"] == 0


def test_http_faults(server: SimulatorServer, http: requests.Session) -> None:
    url = server.url
    robot = _signed_url(url)

    def fault(action: dict[str, Any], **extra: Any) -> None:
        reply = http.post(
            f"{url}/_sim/faults", json={"path": "/robot/send", "action": action, **extra}
        )
        assert reply.status_code == 200, reply.text

    fault({"http_status": 500}, count=2)
    assert [http.post(robot, json=text()).status_code for _ in range(3)] == [500, 500, 200]

    fault({"errcode": 130101})
    assert http.post(robot, json=text()).json()["errcode"] == 130101

    fault({"non_json": True})
    odd = http.post(robot, json=text())
    assert odd.status_code == 200
    with pytest.raises(ValueError):
        odd.json()

    fault({"close": True})
    with pytest.raises(requests.ConnectionError):
        http.post(robot, json=text())

    fault({"delay": 0.3})
    started = time.monotonic()
    assert http.post(robot, json=text()).json()["errcode"] == 0  # delayed, then handled
    assert time.monotonic() - started >= 0.3

    assert http.post(f"{url}/_sim/faults", json={"path": "/robot/send"}).status_code == 400
    delivered = http.get(f"{url}/_sim/messages").json()["messages"]
    assert len(delivered) == 2  # only the normal request and the delayed one
    logged = http.get(f"{url}/_sim/requests").json()["requests"]
    assert [(r["fault"], r["http_status"], r["errcode"]) for r in logged] == [
        ("http_status 500", 500, None),
        ("http_status 500", 500, None),
        (None, 200, 0),
        ("errcode 130101", 200, 130101),
        ("non_json", 200, None),
        ("close", None, None),  # no response at all
        (None, 200, 0),  # the delayed request, handled normally
    ]
    assert http.get(f"{url}/_sim/stats").json()["faults_injected"] == 6


def test_http_rate_limit_is_exact_under_concurrency(
    server: SimulatorServer, http: requests.Session
) -> None:
    server.state.register_robots({"busy": RobotSpec()})
    url = f"{server.url}/robot/send?access_token=busy"
    errcodes: list[int] = []
    lock = threading.Lock()

    def burst() -> None:
        with requests.Session() as session:
            for _ in range(5):
                errcode = session.post(url, json=text(), timeout=10).json()["errcode"]
                with lock:
                    errcodes.append(errcode)

    threads = [threading.Thread(target=burst) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(errcodes) == [0] * 20 + [130101] * 20
    assert len(server.state.messages(token="busy")) == 20


def test_serve_in_thread_stop_releases_port() -> None:
    running = serve_in_thread("127.0.0.1:0")
    port = running.port
    running.stop()
    running.stop()  # idempotent
    with pytest.raises(requests.ConnectionError), requests.Session() as session:
        session.get(f"http://127.0.0.1:{port}/_sim/health", timeout=2)


# --- the CLI -------------------------------------------------------------------------------------


def test_cli_bad_arguments_exit_nonzero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "spec.yaml"
    broken.write_text("robots: {r: {keyword: [x]}}\n", encoding="utf-8")
    assert main(["--spec", str(broken), "--listen", "127.0.0.1:0"]) == 2
    assert "keyword" in capsys.readouterr().err
    assert main(["--listen", "no-port"]) == 2


def _read_line(stream: Any, timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail("the simulator did not print its listening line in time")


class _Cli:
    """The simulator CLI running as a real subprocess."""

    def __init__(self, *args: str) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.simulator", "--listen", "127.0.0.1:0", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.stderr = ""
        try:
            line = _read_line(self.proc.stdout, timeout=20)
        except BaseException:
            self.kill()
            raise
        if not line.startswith("dingtalk simulator listening on http://127.0.0.1:"):
            self.kill()
            pytest.fail(f"unexpected first line {line!r}; stderr: {self.stderr}")
        self.url = line.split(" on ", 1)[1].strip()

    def terminate(self) -> int:
        """SIGTERM, wait, collect stderr; returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        _, self.stderr = self.proc.communicate(timeout=20)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            _, self.stderr = self.proc.communicate()


@pytest.fixture
def cli() -> Iterator[type[_Cli]]:
    started: list[_Cli] = []

    class Tracked(_Cli):
        def __init__(self, *args: str) -> None:
            super().__init__(*args)
            started.append(self)

    yield Tracked
    for running in started:
        running.kill()


def test_cli_subprocess_end_to_end(tmp_path: Path, cli: type[_Cli]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"robots:\n  demo-ops:\n    secret: '{VECTOR_SECRET}'\n    keywords: [FIRING]\n",
        encoding="utf-8",
    )
    sim = cli("--spec", str(spec))
    with requests.Session() as http:
        body = markdown(
            "FIRING DiskFull", "disk 95% @13800000000", at={"atMobiles": ["13800000000"]}
        )
        reply = http.post(_signed_url(sim.url), json=body, timeout=10)
        assert reply.json() == {"errcode": 0, "errmsg": "ok"}
        [message] = http.get(f"{sim.url}/_sim/messages", timeout=10).json()["messages"]
        assert message["body"] == body
        assert message["mentions"]["highlighted_mobiles"] == ["13800000000"]

        fault = {"path": "/robot/send", "count": 1, "action": {"http_status": 500}}
        assert http.post(f"{sim.url}/_sim/faults", json=fault, timeout=10).status_code == 200
        assert http.post(_signed_url(sim.url), json=body, timeout=10).status_code == 500
        assert http.post(_signed_url(sim.url), json=body, timeout=10).json()["errcode"] == 0
        assert len(http.get(f"{sim.url}/_sim/messages", timeout=10).json()["messages"]) == 2
        unsigned = http.post(f"{sim.url}/robot/send?access_token=demo-ops", json=body, timeout=10)
        assert unsigned.json()["errcode"] == 310000
    assert sim.terminate() == 0
    assert 'robot demo… markdown "FIRING DiskFull" @13800000000' in sim.stderr
    assert "fault /robot/send demo… http_status 500" in sim.stderr
    assert "rejected robot demo… 310000 sign not match" in sim.stderr
    assert VECTOR_SECRET not in sim.stderr and "demo-ops" not in sim.stderr


def test_cli_flags_unknown_robots_unlimited_rate_quiet(cli: type[_Cli]) -> None:
    sim = cli("--accept-unknown-robots", "--rate-per-minute", "0", "--quiet")
    with requests.Session() as http:
        replies = [
            http.post(f"{sim.url}/robot/send?access_token=anything", json=text(), timeout=10)
            for _ in range(30)
        ]
        assert [r.json()["errcode"] for r in replies] == [0] * 30
        assert len(http.get(f"{sim.url}/_sim/messages", timeout=10).json()["messages"]) == 30
    assert sim.terminate() == 0
    assert sim.stderr == ""  # --quiet: no per-message lines


def test_cli_default_rejects_unknown_robots(cli: type[_Cli]) -> None:
    sim = cli()
    with requests.Session() as http:
        reply = http.post(f"{sim.url}/robot/send?access_token=anything", json=text(), timeout=10)
    assert reply.json() == {"errcode": 300001, "errmsg": "token is not exist"}
    assert sim.terminate() == 0
    assert "rejected robot anyt… 300001 token is not exist" in sim.stderr
