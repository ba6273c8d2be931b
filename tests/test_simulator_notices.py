"""The simulated DingTalk's work notices, as reference/dingtalk.md §3 says the real one behaves:
errcode 0 from asyncsend_v2 whatever happens next, and the silent drops (same content today
143106, the per-user daily limit 143105, unknown user ids) told only by getsendresult."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bridge.simulator.spec import AppSpec, SimulatorSpec, SpecError, parse_app
from bridge.simulator.state import SimulatorState
from tests.test_simulator import AGENT_ID, APP_KEY, APP_SECRET, asyncsend, notice, raw

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=SHANGHAI).timestamp()


def state_with(**app: Any) -> tuple[SimulatorState, str]:
    spec = SimulatorSpec(apps={APP_KEY: AppSpec(app_secret=APP_SECRET, agent_id=AGENT_ID, **app)})
    state = SimulatorState(spec)
    _, reply = state.gettoken(T0, {"appkey": APP_KEY, "appsecret": APP_SECRET})
    return state, reply["access_token"]


def send_result(state: SimulatorState, token: str, task_id: int, now: float) -> dict[str, Any]:
    status, reply = state.getsendresult(
        now, {"access_token": token}, raw({"agent_id": AGENT_ID, "task_id": task_id})
    )
    assert status == 200 and reply["errcode"] == 0, reply
    result: dict[str, Any] = reply["send_result"]
    return result


def content(i: int) -> dict[str, Any]:
    return {"msgtype": "text", "text": {"content": f"alert {i}"}}


SEND_RESULT_KEYS = {
    "invalid_user_id_list",
    "forbidden_user_id_list",
    "failed_user_id_list",
    "read_user_id_list",
    "unread_user_id_list",
    "invalid_dept_id_list",
    "forbidden_list",
}


def test_unknown_user_ids_are_invalid_and_not_delivered() -> None:
    state, token = state_with(users=("alice", "bob"))
    reply = asyncsend(state, token, notice(userid_list="alice,ghost"), now=T0)
    assert reply["errcode"] == 0  # accepted: the drop is silent
    [message] = state.messages()
    assert (message["recipients"], message["invalid"]) == (["alice"], ["ghost"])
    result = send_result(state, token, reply["task_id"], T0 + 1)
    assert set(result) == SEND_RESULT_KEYS
    assert result["invalid_user_id_list"] == ["ghost"]
    assert result["unread_user_id_list"] == ["alice"]
    apps = state.stats()["apps"][APP_KEY]
    assert (apps["recipients_delivered"], apps["recipients_invalid"]) == (1, 1)


def test_daily_limit_per_user_is_143105() -> None:
    state, token = state_with(daily_limit=2)
    tasks = [asyncsend(state, token, notice(content(i)), now=T0 + i)["task_id"] for i in range(3)]
    assert [m["recipients"] for m in state.messages()] == [["user1"], ["user1"], []]
    result = send_result(state, token, tasks[2], T0 + 5)
    assert result["forbidden_user_id_list"] == ["user1"]
    assert result["forbidden_list"] == [{"code": "143105", "count": 1, "userid": "user1"}]
    assert result["unread_user_id_list"] == []
    assert state.stats()["apps"][APP_KEY]["recipients_forbidden"] == 1


def test_default_daily_limit_is_500() -> None:
    state, token = state_with()
    for i in range(501):
        asyncsend(state, token, notice(content(i)), now=T0 + i / 100)
    assert [len(m["recipients"]) for m in state.messages()].count(1) == 500
    assert state.messages()[-1]["forbidden_codes"] == {"user1": 143105}


@pytest.mark.parametrize(
    ("first", "second", "dropped"),
    [
        # 00:00:30 and 23:59:30 China time: one DingTalk day (two UTC days)
        (
            datetime(2026, 12, 1, 0, 0, 30, tzinfo=SHANGHAI),
            datetime(2026, 12, 1, 23, 59, 30, tzinfo=SHANGHAI),
            True,
        ),
        # 23:59:30 and 00:00:30 China time: two DingTalk days (one UTC day)
        (
            datetime(2026, 12, 1, 23, 59, 30, tzinfo=SHANGHAI),
            datetime(2026, 12, 2, 0, 0, 30, tzinfo=SHANGHAI),
            False,
        ),
    ],
    ids=["same-china-day", "china-midnight-between"],
)
def test_same_content_same_user_same_day_is_dropped_with_143106(
    first: datetime, second: datetime, dropped: bool
) -> None:
    state, token = state_with(token_ttl=10**6)
    asyncsend(state, token, notice(content(1)), now=first.timestamp())
    again = asyncsend(state, token, notice(content(1)), now=second.timestamp())
    assert again["errcode"] == 0
    result = send_result(state, token, again["task_id"], second.timestamp())
    if dropped:
        assert result["forbidden_list"] == [{"code": "143106", "count": 1, "userid": "user1"}]
        assert result["unread_user_id_list"] == []
    else:
        assert result["forbidden_list"] == []
        assert result["unread_user_id_list"] == ["user1"]


def test_five_different_notices_in_one_second_all_arrive() -> None:
    state, token = state_with()
    for i in range(5):
        asyncsend(state, token, notice(content(i)), now=T0 + i / 10)
    assert [m["recipients"] for m in state.messages()] == [["user1"]] * 5


def test_result_is_empty_until_dingtalk_has_processed_the_task() -> None:
    state, token = state_with(result_delay=3.0)
    task = asyncsend(state, token, notice(userid_list="user1,user2"), now=T0)["task_id"]
    early = send_result(state, token, task, T0 + 1)
    assert all(early[key] == [] for key in SEND_RESULT_KEYS)
    late = send_result(state, token, task, T0 + 3)
    assert late["unread_user_id_list"] == ["user1", "user2"]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"users": "alice"}, "users must be a list"),
        ({"users": ["alice", ""]}, "users must be a list"),
        ({"daily_limit": -1}, "daily_limit must be an integer"),
        ({"daily_limit": 1.5}, "daily_limit must be an integer"),
        ({"result_delay": -1}, "result_delay must be a number"),
        ({"result_delay": "1s"}, "result_delay must be a number"),
    ],
)
def test_app_spec_options_are_checked(data: dict[str, Any], error: str) -> None:
    with pytest.raises(SpecError, match=error):
        parse_app({"app_secret": "s", "agent_id": 1, **data})


def test_app_spec_options_parse() -> None:
    app = parse_app(
        {"app_secret": "s", "agent_id": 1, "users": ["a"], "daily_limit": 2, "result_delay": 1}
    )
    assert (app.users, app.daily_limit, app.result_delay) == (("a",), 2, 1.0)
