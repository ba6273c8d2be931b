"""The simulated v1.0 API (simulator/openapi.py) as reference/dingtalk.md §2.2, §6 and
dingtalk-stream.md §10-§11 describe the real one: the token in a header, errors as HTTP 4xx with
{code, message, requestid}, 20 users a batch, msgParam a JSON string of at most 15,000 bytes,
per-user flow control, a per-app QPS, recall within 24 h of the robot's own messages."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.simulator.openapi import (
    BATCH_RECALL,
    BATCH_SEND,
    CARD_CREATE_DELIVER,
    CARD_UPDATE,
    GROUP_RECALL,
    GROUP_SEND,
    TOKEN_PATH,
)
from bridge.simulator.spec import AppSpec, SimulatorSpec, SpecError, parse_app
from bridge.simulator.state import SimulatorState

T0 = 1_780_000_000.0
KEY, SECRET = "dingappkey", "s3cret"
TEXT = {"msgKey": "sampleText", "msgParam": json.dumps({"content": "hi"})}


def _state(**robot: Any) -> tuple[SimulatorState, str]:
    app = AppSpec(app_secret=SECRET, agent_id=1, **robot)
    state = SimulatorState(SimulatorSpec(apps={KEY: app}))
    status, answer = _call(state, "", TOKEN_PATH, {"appKey": KEY, "appSecret": SECRET})
    assert status == 200 and answer["expireIn"] == int(app.token_ttl)
    return state, answer["accessToken"]


def _call(
    state: SimulatorState, token: str, path: str, body: Any, now: float = T0, method: str = "POST"
) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return state.openapi(now, method, path, token, raw)


def _group(**extra: Any) -> dict[str, Any]:
    return {"robotCode": KEY, "openConversationId": "cid1", **TEXT, **extra}


def _oto(users: list[str], **extra: Any) -> dict[str, Any]:
    return {"robotCode": KEY, "userIds": users, **TEXT, **extra}


def test_a_group_send_is_recorded_with_its_process_query_key() -> None:
    state, token = _state(groups=("cid1",))
    status, answer = _call(state, token, GROUP_SEND, _group())
    assert status == 200
    [message] = state.messages()
    assert message["kind"] == "app_robot" and message["text"] == "hi"
    assert message["process_query_key"] == answer["processQueryKey"]
    assert message["open_conversation_id"] == "cid1" and message["recalled"] is False


ERRORS: list[tuple[str, dict[str, Any], Any, int, str]] = [
    ("unknown robot", {}, _group(robotCode="other"), 400, "invalidParameter.robotCode.notExsit"),
    ("stopped bot", {"bot_stopped": True}, _group(), 400, "bot.stopped"),
    ("disbanded", {"disbanded_groups": ("cid1",)}, _group(), 400, "group.disbanded"),
    ("not in group", {"groups": ("cid2",)}, _group(), 400,
     "invalidParameter.openConversationId.invalid"),
    ("msgKey", {}, _group(msgKey="nope"), 400, "invalidParameter.msgKey.invalid"),
    ("msgParam not a string", {}, _group(msgParam={"content": "x"}), 400,
     "invalidParameter.msgParam.invalid"),
    ("msgParam not JSON", {}, _group(msgParam="{x"), 400, "invalidParameter.msgParam.invalid"),
    ("msgParam lacks a field", {}, _group(msgKey="sampleMarkdown"), 400,
     "invalidParameter.msgParam.invalid"),
    ("msgParam too long", {}, _group(msgParam=json.dumps({"content": "x" * 15_000})), 400,
     "invalidParameter.msgParam.tooLong"),
    ("21 users", {}, ("oto", _oto([f"u{i}" for i in range(21)])), 400,
     "invalidParameter.userIds.overMax"),
    ("no users", {}, ("oto", _oto([])), 400, "invalidParameter.userIds.empty"),
    ("body not JSON", {}, b"\xff", 400, "invalidParameter.body"),
]  # fmt: skip


@pytest.mark.parametrize(
    "robot, body, status, code", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_errors_are_http_4xx_with_a_code(
    robot: dict[str, Any], body: Any, status: int, code: str
) -> None:
    state, token = _state(**robot)
    path = GROUP_SEND
    if isinstance(body, tuple):
        path, body = BATCH_SEND, body[1]
    got, answer = _call(state, token, path, body)
    assert (got, answer["code"]) == (status, code)
    assert set(answer) == {"code", "message", "requestid"}
    assert state.messages() == []


def test_a_bad_or_expired_token_is_401() -> None:
    state, token = _state(token_ttl=100)
    assert _call(state, "nope", GROUP_SEND, _group())[0] == 401
    assert _call(state, token, GROUP_SEND, _group(), now=T0 + 100)[0] == 401
    status, answer = _call(state, "", TOKEN_PATH, {"appKey": KEY, "appSecret": "wrong"})
    assert status == 400 and answer["code"] == "invalidClientIdOrSecret"


def test_expire_tokens_expires_the_v1_token_too() -> None:
    state, token = _state()
    assert state.expire_tokens(T0, KEY) == 1
    assert _call(state, token, GROUP_SEND, _group())[0] == 401


def test_batch_send_reports_invalid_and_flow_controlled_users() -> None:
    state, token = _state(users=("u1", "u2"), user_rate_per_minute=1)
    status, first = _call(state, token, BATCH_SEND, _oto(["u1", "ghost"]))
    assert status == 200
    assert (first["invalidStaffIdList"], first["flowControlledStaffIdList"]) == (["ghost"], [])
    _, second = _call(state, token, BATCH_SEND, _oto(["u1", "u2"]), now=T0 + 1)
    assert second["flowControlledStaffIdList"] == ["u1"]
    assert [m["recipients"] for m in state.messages()] == [["u1"], ["u2"]]
    _, later = _call(state, token, BATCH_SEND, _oto(["u1"]), now=T0 + 61)
    assert later["flowControlledStaffIdList"] == []


def test_the_qps_limit_answers_403_throttling() -> None:
    state, token = _state(qps=2)
    answers = [_call(state, token, GROUP_SEND, _group(), now=T0 + 0.1 * i) for i in range(3)]
    assert [a[0] for a in answers] == [200, 200, 403]
    assert answers[2][1]["code"] == "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"
    assert _call(state, token, GROUP_SEND, _group(), now=T0 + 1.05)[0] == 200
    assert _call(state, token, BATCH_SEND, _oto(["u1"]), now=T0 + 0.3)[0] == 200  # per API


def test_the_monthly_quota_refuses_sends_until_the_month_turns_in_china() -> None:
    state, token = _state(monthly_quota=2)
    # 2026-01-31 15:59:59 UTC is 23:59:59 in China: the last second of January there.
    end_of_january = 1_769_875_199.0
    answers = [_call(state, token, GROUP_SEND, _group(), now=end_of_january) for _ in range(3)]
    assert [a[0] for a in answers] == [200, 200, 403]
    assert answers[2][1]["code"] == "Forbidden.AccessDenied.ApiCountLimitForOrg"
    assert "额度:2次" in answers[2][1]["message"]
    recall = {"robotCode": KEY, "openConversationId": "cid1", "processQueryKeys": ["k"]}
    assert _call(state, token, GROUP_RECALL, recall, now=end_of_january)[0] == 200  # not metered
    assert _call(state, token, GROUP_SEND, _group(), now=end_of_january + 1)[0] == 200


def test_the_monthly_quota_answers_a_work_notice_with_errcode_90020() -> None:
    app = AppSpec(app_secret=SECRET, agent_id=1, monthly_quota=1)
    state = SimulatorState(SimulatorSpec(apps={KEY: app}))
    token = state.gettoken(T0, {"appkey": KEY, "appsecret": SECRET})[1]["access_token"]
    body = json.dumps(
        {"agent_id": 1, "userid_list": "u1", "msg": {"msgtype": "text", "text": {"content": "x"}}}
    )
    first = state.asyncsend(T0, {"access_token": token}, body.encode())[1]
    second = state.asyncsend(T0, {"access_token": token}, body.encode())[1]
    assert first["errcode"] == 0 and second["errcode"] == 90020


def test_recall_marks_the_message_and_fails_keys_of_others_and_old_ones() -> None:
    state, token = _state()
    key = _call(state, token, GROUP_SEND, _group())[1]["processQueryKey"]
    other_group = _call(state, token, GROUP_SEND, _group(openConversationId="cid9"))[1]
    oto = _call(state, token, BATCH_SEND, _oto(["u1"]))[1]["processQueryKey"]
    body = {"robotCode": KEY, "openConversationId": "cid1"}
    keys = [key, other_group["processQueryKey"], oto, "unknown"]
    status, answer = _call(state, token, GROUP_RECALL, {**body, "processQueryKeys": keys})
    assert status == 200 and answer["successResult"] == [key]
    assert set(answer["failedResult"]) == set(keys[1:])
    assert [m["recalled"] for m in state.messages()] == [True, False, False]
    recall = {"robotCode": KEY, "processQueryKeys": [oto]}
    later = T0 + 86_401
    fresh = _call(state, "", TOKEN_PATH, {"appKey": KEY, "appSecret": SECRET}, now=later)[1]
    late = _call(state, fresh["accessToken"], BATCH_RECALL, recall, now=later)[1]
    assert late["successResult"] == [] and oto in late["failedResult"]
    assert _call(state, token, BATCH_RECALL, recall, now=T0 + 3600)[1]["successResult"] == [oto]
    too_many = {"robotCode": KEY, "processQueryKeys": [oto] * 21}
    assert _call(state, token, BATCH_RECALL, too_many)[0] == 400


def test_cards_are_recorded() -> None:
    state, token = _state()
    create = {"cardTemplateId": "tpl", "outTrackId": "t1", "openSpaceId": "dtv1.card//IM_GROUP.c"}
    assert _call(state, token, CARD_CREATE_DELIVER, create)[0] == 200
    update = {"outTrackId": "t1", "cardData": {"cardParamMap": {"a": "b"}}}
    # UpdateCardResponseBody: `result` is a boolean (the change made), not createAndDeliver's
    # object.
    assert _call(state, token, CARD_UPDATE, update, method="PUT") == (
        200,
        {"success": True, "result": True},
    )
    assert _call(state, token, CARD_UPDATE, {"outTrackId": "t2"}, method="PUT")[0] == 400
    assert [c["op"] for c in state.cards()] == ["created", "updated"]


def test_a_result_false_fault_answers_a_v1_call_taken_and_not_applied() -> None:
    from bridge.simulator.faults import FaultError, parse_action

    assert parse_action({"result_false": True}).kind == "result_false"
    with pytest.raises(FaultError, match="result_false"):
        parse_action({"result_false": 1})


def test_the_app_spec_takes_the_robot_keys_and_rejects_bad_ones() -> None:
    spec = parse_app(
        {"app_secret": "s", "agent_id": 1, "robot_code": "r", "groups": ["c"], "qps": 5}
    )
    assert (spec.robot_code, spec.groups, spec.qps) == ("r", ("c",), 5)
    for bad in ({"groups": "c"}, {"qps": -1}, {"bot_stopped": "yes"}, {"robot_code": ""}):
        with pytest.raises(SpecError):
            parse_app({"app_secret": "s", "agent_id": 1, **bad})


@settings(max_examples=150, deadline=None)
@given(
    path=st.sampled_from([GROUP_SEND, BATCH_SEND, GROUP_RECALL, BATCH_RECALL, TOKEN_PATH]),
    body=st.binary(max_size=200)
    | st.dictionaries(
        st.sampled_from(
            ["robotCode", "userIds", "msgKey", "msgParam", "openConversationId", "processQueryKeys"]
        ),
        st.none() | st.integers() | st.text(max_size=10) | st.lists(st.text(max_size=5)),
    ).map(lambda d: json.dumps(d).encode()),
)
def test_any_body_gets_an_answer(path: str, body: bytes) -> None:
    state, token = _state()
    status, answer = _call(state, token, path, body)
    assert status in (200, 400, 401, 403)
    assert isinstance(answer, dict)


def test_the_page_shows_app_robot_messages_their_refusals_and_recalls() -> None:
    from bridge.simulator.page import render_page

    state, token = _state(users=("u1",))
    key = _call(state, token, GROUP_SEND, _group())[1]["processQueryKey"]
    _call(state, token, BATCH_SEND, _oto(["u1", "ghost"]))
    recall = {"robotCode": KEY, "openConversationId": "cid1", "processQueryKeys": [key]}
    _call(state, token, GROUP_RECALL, recall)
    page = render_page(state.messages(), state.requests(), T0)
    assert "app robot dingappkey" in page and "to group cid1" in page
    assert "refused (invalid/flow control): ghost" in page and "recalled" in page
