"""getsendresult answers -> who received a work notice, and what becomes of the message."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.dingtalk.sendresult import (
    FAILED,
    FORBIDDEN,
    INVALID_USER,
    Refusal,
    SendResult,
    is_final,
    judge,
    parse_send_result,
)
from bridge.errors import Reason


def answer(**lists: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", "send_result": lists, "request_id": "r"}


PARSE_CASES: list[tuple[str, dict[str, Any], SendResult]] = [
    ("empty (not processed yet)", answer(), SendResult()),
    (
        "read and unread both received",
        answer(read_user_id_list=["a"], unread_user_id_list=["b"]),
        SendResult(received=("a", "b")),
    ),
    (
        "forbidden with string codes, as DingTalk writes them",
        answer(
            unread_user_id_list=["a"],
            forbidden_user_id_list=["b", "c"],
            forbidden_list=[
                {"code": "143105", "count": 1, "userid": "b"},
                {"code": "143106", "count": 1, "userid": "c"},
            ],
        ),
        SendResult(received=("a",), duplicates=("c",), refused=(Refusal("b", "143105"),)),
    ),
    (
        "integer code; a user only in forbidden_list",
        answer(forbidden_list=[{"code": 143103, "count": 1, "userid": "d"}]),
        SendResult(refused=(Refusal("d", "143103"),)),
    ),
    (
        "forbidden without a code",
        answer(forbidden_user_id_list=["e"]),
        SendResult(refused=(Refusal("e", FORBIDDEN),)),
    ),
    (
        "invalid and failed users, invalid departments",
        answer(
            invalid_user_id_list=["ghost"],
            failed_user_id_list=["f"],
            invalid_dept_id_list=["9"],
        ),
        SendResult(
            refused=(Refusal("ghost", INVALID_USER), Refusal("f", FAILED)), invalid_depts=("9",)
        ),
    ),
    (
        "a user listed twice counts once, received first",
        answer(unread_user_id_list=["a", "a"], invalid_user_id_list=["a"]),
        SendResult(received=("a",)),
    ),
    (
        "hostile shapes are ignored, not trusted",
        answer(
            read_user_id_list="a,b",
            unread_user_id_list=[1, None, "", {"x": 1}, "ok"],
            forbidden_list=[None, {"userid": 5, "code": "143105"}, {"userid": "z", "code": True}],
            forbidden_user_id_list={"a": 1},
        ),
        SendResult(received=("ok",)),
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in PARSE_CASES], ids=[c[0] for c in PARSE_CASES]
)
def test_parse_send_result(body: dict[str, Any], expected: SendResult) -> None:
    assert parse_send_result(body) == expected


@pytest.mark.parametrize("body", [{}, {"send_result": None}, {"send_result": ["a"]}])
def test_parse_refuses_an_answer_without_send_result(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="send_result"):
        parse_send_result(body)


DONE = SendResult(received=("a",), refused=(Refusal("b", "143105"),))


@pytest.mark.parametrize(
    ("result", "expected", "previous", "final"),
    [
        (SendResult(), ("a", "b"), None, False),
        (SendResult(received=("a",)), ("a", "b"), None, False),  # b not processed yet
        (DONE, ("a", "b"), None, True),
        (SendResult(duplicates=("a",), received=("b",)), ("a", "b"), None, True),
        # departments / everyone: who is meant is unknown; final when it stops changing
        (SendResult(), None, SendResult(), False),
        (DONE, None, None, False),
        (DONE, None, SendResult(received=("a",)), False),
        (DONE, None, DONE, True),
    ],
)
def test_is_final(
    result: SendResult,
    expected: tuple[str, ...] | None,
    previous: SendResult | None,
    final: bool,
) -> None:
    assert is_final(result, expected, previous) is final


@pytest.mark.parametrize(
    ("result", "may_retry", "outcome", "reason", "errcode"),
    [
        (SendResult(received=("a", "b")), True, "delivered", None, None),
        # a retry after a lost answer: DingTalk's dedup absorbed it, the user has it
        (SendResult(duplicates=("a",)), True, "delivered", None, None),
        (DONE, True, "partial", None, None),
        (SendResult(refused=(Refusal("a", "143105"),)), True, "dead", Reason.RATE_LIMITED, 143105),
        (
            SendResult(refused=(Refusal("ghost", INVALID_USER),)),
            True,
            "dead",
            Reason.DINGTALK_CONFIG,
            None,
        ),
        (
            SendResult(
                refused=(Refusal("a", "143105"), Refusal("b", "143105"), Refusal("c", FAILED))
            ),
            True,
            "dead",
            Reason.RATE_LIMITED,
            143105,  # the most common refusal names the dead letter
        ),
        (
            SendResult(refused=(Refusal("a", "1430002"),)),
            True,
            "dead",
            Reason.DINGTALK_REJECTED,
            1430002,
        ),
        # flow control: try again (while the message is young enough), else it is refused
        (
            SendResult(received=("a",), refused=(Refusal("b", "143103"),)),
            True,
            "retry",
            Reason.RATE_LIMITED,
            143103,
        ),
        (
            SendResult(received=("a",), refused=(Refusal("b", "143103"),)),
            False,
            "partial",
            None,
            None,
        ),
        (SendResult(refused=(Refusal("b", "143104"),)), False, "dead", Reason.RATE_LIMITED, 143104),
    ],
)
def test_judge(
    result: SendResult,
    may_retry: bool,
    outcome: str,
    reason: Reason | None,
    errcode: int | None,
) -> None:
    verdict = judge(result, may_retry)
    assert (verdict.outcome, verdict.reason, verdict.errcode) == (outcome, reason, errcode)
    if outcome == "dead":
        assert verdict.errmsg is not None and verdict.errmsg.startswith("nobody received it: ")
        assert all(r.userid in verdict.errmsg for r in result.refused)
