"""The channels in-process: each target type's bodies, limits, rate key and the classification of
DingTalk's answers (reference/dingtalk.md §1.8, §3.1), against tables. DingTalk is a fake
`requests` session answering from a script; the clock is a FakeClock."""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass, field, replace
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests

from bridge.clock import FakeClock
from bridge.config.model import RobotTarget, SendPolicy, Target, WorkNoticeTarget
from bridge.dingtalk.channel import Channel, ResultChannel
from bridge.dingtalk.channels import CHANNELS, bodies_for, channel_for
from bridge.dingtalk.client import DingTalkClient
from bridge.dingtalk.responses import (
    AwaitingResult,
    Delivered,
    Failed,
    LockedOut,
    Refused,
    RetryLater,
    SendOutcome,
)
from bridge.dingtalk.robot import ROBOT_MAX_BYTES, RobotChannel
from bridge.dingtalk.signing import robot_sign
from bridge.dingtalk.sizing import encode
from bridge.dingtalk.worknotice import WORK_NOTICE_DIGEST_BYTES, WorkNoticeChannel
from bridge.errors import Reason
from bridge.model import Message
from tests.fakehttp import FakeHttp, Response

T = 1_780_000_000.0
UTC8 = ZoneInfo("Asia/Shanghai")
WEBHOOK = "https://oapi.dingtalk.com/robot/send?access_token=TOKEN-1"
ROBOT = RobotTarget("ops", WEBHOOK, None, keywords=("alert",))
SIGNED = RobotTarget("signed", WEBHOOK, "SEC-secret")
NOTICE = WorkNoticeTarget("oncall", "appkey", "app-s3cret", agent_id=7, userids=("u1", "u2"))
TO_DEPT = replace(NOTICE, name="dept", userids=(), dept_ids=("42",))
MESSAGE = Message("markdown", "Disk full", "### Disk full\n\nhost-1 is at 99%")


# -- a fake DingTalk behind requests ------------------------------------------------------------


Scripted = tuple[int, dict[str, Any] | bytes] | requests.RequestException


@dataclass
class FakeSession(FakeHttp):
    """Answers each call from `script` in order (errcode 0 when it runs out); /gettoken always
    hands out a new token. Remembers every call."""

    script: list[Scripted] = field(default_factory=list)
    calls: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    tokens: int = 0

    def answer(
        self, method: str, url: str, data: bytes | None, params: dict[str, str],
        headers: dict[str, str],
    ) -> Response:  # fmt: skip
        self.calls.append((method, url, params))
        if url.endswith("/gettoken"):
            self.tokens += 1
            token = {"errcode": 0, "access_token": f"tok-{self.tokens}", "expires_in": 7200}
            return Response(200, json.dumps(token).encode())
        answer: Scripted = self.script.pop(0) if self.script else (200, {"errcode": 0})
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        return Response(status, body if isinstance(body, bytes) else json.dumps(body).encode())

    def posts(self) -> list[str]:
        return [url for _, url, _ in self.calls if not url.endswith("/gettoken")]


def client_with(*script: Scripted, clock: FakeClock | None = None) -> tuple[DingTalkClient, Any]:
    session = FakeSession(list(script))
    client = DingTalkClient(cast(requests.Session, session), clock=clock or FakeClock(T))
    return client, session


def errcode(code: int, **extra: Any) -> tuple[int, dict[str, Any]]:
    return 200, {"errcode": code, "errmsg": f"simulated {code}", **extra}


# -- the registry -------------------------------------------------------------------------------


def test_every_target_type_has_a_channel() -> None:
    assert set(CHANNELS) == set(typing.get_args(Target))
    assert isinstance(channel_for(ROBOT, None), RobotChannel)
    assert isinstance(channel_for(NOTICE, None), WorkNoticeChannel)


def test_only_channels_that_confirm_later_are_result_channels() -> None:
    assert not isinstance(channel_for(ROBOT, None), ResultChannel)
    notice = channel_for(NOTICE, None)
    assert isinstance(notice, ResultChannel)
    assert notice.recipients() == ("u1", "u2")
    to_dept = channel_for(TO_DEPT, None)
    assert isinstance(to_dept, ResultChannel) and to_dept.recipients() is None


def test_a_channel_made_for_bodies_only_cannot_post() -> None:
    for target in (ROBOT, NOTICE):
        with pytest.raises(RuntimeError, match="without a client"):
            channel_for(target, None).post({"msgtype": "text"})


# -- rate keys ----------------------------------------------------------------------------------

RATE_KEYS = {
    # (target, target sharing its key or not, shared)
    "robot_other_keywords": (ROBOT, replace(ROBOT, name="x", keywords=("ALARM",)), True),
    "robot_signed": (ROBOT, SIGNED, True),  # the secret signs; the token is the robot
    "robot_other_token": (ROBOT, replace(ROBOT, webhook=WEBHOOK.replace("-1", "-2")), False),
    "robot_other_host": (ROBOT, replace(ROBOT, webhook=WEBHOOK.replace("https", "http")), False),
    "app_other_users": (NOTICE, TO_DEPT, True),
    "app_other_key": (NOTICE, replace(NOTICE, app_key="other"), False),
    "app_other_base": (NOTICE, replace(NOTICE, api_base="http://127.0.0.1:9"), False),
}


@pytest.mark.parametrize(("one", "other", "shared"), RATE_KEYS.values(), ids=RATE_KEYS.keys())
def test_rate_keys_name_whom_dingtalk_counts_and_hold_no_secret(
    one: Target, other: Target, shared: bool
) -> None:
    a, b = channel_for(one, None).rate_key, channel_for(other, None).rate_key
    assert (a == b) is shared
    for key in (a, b):
        assert "TOKEN" not in key and "s3cret" not in key and "SEC" not in key
        assert key.startswith(("robot-", "app-"))


# -- bodies and limits --------------------------------------------------------------------------

LONG = Message("markdown", "Long", "\n".join(f"line {i:05d} " + "x" * 60 for i in range(800)))
LONG_TEXT = Message("text", "Long", "\n".join(f"行 {i:05d} " + "字" * 40 for i in range(800)))


@pytest.mark.parametrize("message", [LONG, LONG_TEXT], ids=["markdown", "text_cjk"])
def test_robot_splits_a_long_message_into_parts_within_its_limit(message: Message) -> None:
    channel = channel_for(ROBOT, None)
    bodies = channel.bodies(message, ["id1"], T, UTC8)
    assert len(bodies) >= 3
    assert all(len(encode(b)) <= ROBOT_MAX_BYTES for b in bodies)
    kind = message.msgtype
    text = "".join(b[kind]["text" if kind == "markdown" else "content"] for b in bodies)
    assert all(f" {i:05d} " in text for i in range(800))


def test_robot_without_split_cuts_one_body_to_its_limit() -> None:
    target = replace(ROBOT, policy=replace(ROBOT.policy, split=False))
    [body] = channel_for(target, None).bodies(LONG, ["id1"], T, UTC8)
    assert len(encode(body)) <= ROBOT_MAX_BYTES and "truncated" in body["markdown"]["text"]


def test_robot_adds_its_keyword_and_its_digest_body_is_never_cut() -> None:
    channel = channel_for(ROBOT, None)
    [body] = channel.bodies(MESSAGE, ["id1"], T, UTC8)
    assert "alert" in body["markdown"]["text"]
    assert channel.digest_limit == ROBOT_MAX_BYTES
    whole = channel.digest_body(LONG)  # measured whole: the digest builder cuts, not the body
    assert len(encode(whole)) > ROBOT_MAX_BYTES and "line 00799" in whole["markdown"]["text"]


def test_work_notice_body_is_the_same_for_every_try_and_unique_per_message() -> None:
    channel = channel_for(NOTICE, None)
    [first] = channel.bodies(MESSAGE, ["0" * 20 + "aaaaaaaaaaaa"], T, UTC8)
    [again] = channel.bodies(MESSAGE, ["0" * 20 + "aaaaaaaaaaaa"], T, UTC8)
    [other] = channel.bodies(MESSAGE, ["0" * 20 + "bbbbbbbbbbbb"], T, UTC8)
    assert first == again != other
    assert first["agent_id"] == 7 and first["userid_list"] == "u1,u2"
    assert channel.digest_limit == WORK_NOTICE_DIGEST_BYTES
    assert channel.digest_body(MESSAGE)["msg"]["msgtype"] == "markdown"
    assert bodies_for(NOTICE, MESSAGE, ["0" * 20 + "aaaaaaaaaaaa"], T, UTC8) == [first]


# -- posting and classification: the robot ------------------------------------------------------

LOCKOUT = 600.0
ROBOT_ANSWERS: dict[str, tuple[Scripted, type, Reason | None, bool, bool]] = {
    # (DingTalk's answer, outcome type, reason, counted by its window, an outage)
    "ok": ((200, {"errcode": 0, "errmsg": "ok"}), Delivered, None, True, False),
    "busy_-1": (errcode(-1), RetryLater, Reason.DINGTALK_BUSY, True, True),
    "too_fast_130101": (errcode(130101), LockedOut, Reason.RATE_LIMITED, True, False),
    "too_fast_410100": (errcode(410100), LockedOut, Reason.RATE_LIMITED, True, False),
    "keyword_310000": (errcode(310000), Refused, Reason.DINGTALK_CONFIG, True, False),
    "no_token_300001": (errcode(300001), Refused, Reason.DINGTALK_CONFIG, True, False),
    "too_long_460101": (errcode(460101), Refused, Reason.TOO_LARGE, True, False),
    "too_long_101002": (errcode(101002), Refused, Reason.TOO_LARGE, True, False),
    "group_gone_400013": (errcode(400013), Refused, Reason.DINGTALK_CONFIG, True, False),
    "unknown_errcode": (errcode(123456), Refused, Reason.DINGTALK_REJECTED, True, False),
    "http_500": ((500, b"oops"), RetryLater, Reason.SERVER_ERROR, False, True),
    "http_429_gateway": ((429, b""), RetryLater, Reason.RATE_LIMITED, False, True),
    "not_json_200": ((200, b"<html>"), RetryLater, Reason.SERVER_ERROR, False, True),
    "connect_timeout": (requests.ConnectTimeout(), RetryLater, Reason.NETWORK, False, True),
    "refused": (requests.ConnectionError(), RetryLater, Reason.NETWORK, False, True),
    "read_timeout": (requests.ReadTimeout(), RetryLater, Reason.TIMEOUT, True, True),
}


@pytest.mark.parametrize(
    ("answer", "kind", "reason", "counted", "outage"),
    ROBOT_ANSWERS.values(),
    ids=ROBOT_ANSWERS.keys(),
)
def test_robot_answers_become_typed_outcomes(
    answer: Scripted, kind: type, reason: Reason | None, counted: bool, outage: bool
) -> None:
    client, session = client_with(answer)
    outcome = channel_for(ROBOT, client).post({"msgtype": "text", "text": {"content": "x"}})
    assert type(outcome) is kind
    assert session.posts() == [WEBHOOK]
    if isinstance(outcome, Failed):
        assert outcome.reason is reason and outcome.counted is counted
        assert (isinstance(outcome, RetryLater) and outcome.outage) is outage
        assert "TOKEN" not in outcome.detail  # never the URL
    if isinstance(outcome, LockedOut):
        assert outcome.seconds == LOCKOUT
    if isinstance(answer, tuple) and isinstance(answer[1], dict) and answer[1]["errcode"]:
        assert isinstance(outcome, Failed) and outcome.errcode == answer[1]["errcode"]


def test_a_robot_lockout_lasts_what_the_target_configures() -> None:
    target = replace(ROBOT, policy=SendPolicy(lockout=30.0))
    client, _ = client_with(errcode(130101))
    outcome = channel_for(target, client).post({})
    assert isinstance(outcome, LockedOut) and outcome.seconds == 30.0


def test_a_signed_robot_signs_every_post_with_the_clock() -> None:
    clock = FakeClock(T)
    client, session = client_with((200, {"errcode": 0}), (200, {"errcode": 0}), clock=clock)
    channel = channel_for(SIGNED, client)
    channel.post({})
    clock.advance(5)
    channel.post({})
    stamps = []
    for url in session.posts():
        query = parse_qs(urlsplit(url).query)
        stamp = int(query["timestamp"][0])
        assert query["sign"][0] == robot_sign(stamp, "SEC-secret")
        assert query["access_token"] == ["TOKEN-1"]
        stamps.append(stamp)
    assert stamps == [int(T * 1000), int((T + 5) * 1000)]


# -- posting and classification: the work notice ------------------------------------------------

NOTICE_ANSWERS: dict[str, tuple[list[Scripted], SendOutcome | type, Reason | None, int]] = {
    # (DingTalk's answers, outcome (or its type), reason, tokens fetched)
    "queued": (
        [(200, {"errcode": 0, "task_id": 256271667526})],
        AwaitingResult(256271667526),
        None,
        1,
    ),
    "no_task_id": ([(200, {"errcode": 0})], Delivered(), None, 1),
    "app_quota_143103": ([errcode(143103)], LockedOut, Reason.RATE_LIMITED, 1),
    "org_quota_143104": ([errcode(143104)], LockedOut, Reason.RATE_LIMITED, 1),
    "monthly_quota_90020": ([errcode(90020)], LockedOut, Reason.QUOTA, 1),
    "no_recipient_1430000": ([errcode(1430000)], Refused, Reason.DINGTALK_CONFIG, 1),
    "token_expired_then_ok": (
        [errcode(42001), (200, {"errcode": 0, "task_id": 5})],
        AwaitingResult(5),
        None,
        2,
    ),
    "token_refused_twice": ([errcode(40001), errcode(40001)], RetryLater, Reason.AUTH, 2),
    "busy": ([errcode(-1)], RetryLater, Reason.DINGTALK_BUSY, 1),
}


@pytest.mark.parametrize(
    ("answers", "expected", "reason", "tokens"), NOTICE_ANSWERS.values(), ids=NOTICE_ANSWERS.keys()
)
def test_work_notice_answers_become_typed_outcomes(
    answers: list[Scripted], expected: SendOutcome | type, reason: Reason | None, tokens: int
) -> None:
    client, session = client_with(*answers)
    channel = channel_for(NOTICE, client)
    outcome = channel.post(channel.bodies(MESSAGE, ["id1"], T, UTC8)[0])
    if isinstance(expected, type):
        assert type(outcome) is expected
        assert isinstance(outcome, Failed) and outcome.reason is reason
        assert "s3cret" not in outcome.detail
    else:
        assert outcome == expected
    assert session.tokens == tokens
    assert all(u.endswith("/asyncsend_v2") for u in session.posts())
    if isinstance(outcome, LockedOut):
        # The minute's quota: wait the minute out; the month's: the policy's quota_wait.
        month = outcome.reason is Reason.QUOTA
        assert outcome.seconds == (NOTICE.policy.quota_wait if month else 60.0)


def test_the_channels_satisfy_the_protocol() -> None:
    channels: list[Channel] = [RobotChannel(ROBOT), WorkNoticeChannel(NOTICE)]
    assert [c.name for c in channels] == ["ops", "oncall"]
    assert [c.timeout for c in channels] == [ROBOT.timeout, NOTICE.timeout]
