"""Classification of DingTalk answers: the JSON body decides, not the HTTP status."""

from __future__ import annotations

import json

import pytest

from bridge.dingtalk.responses import classify
from bridge.errors import Reason

CASES = [
    # (http status, body, ok, reason, retryable, token_invalid)
    (200, {"errcode": 0, "errmsg": "ok"}, True, None, False, False),
    (200, {"errcode": -1, "errmsg": "系统繁忙"}, False, Reason.DINGTALK_BUSY, True, False),
    (200, {"errcode": 130101, "errmsg": "send too fast"}, False, Reason.RATE_LIMITED, True, False),
    (200, {"errcode": 410100}, False, Reason.RATE_LIMITED, True, False),
    (200, {"errcode": 143103}, False, Reason.RATE_LIMITED, True, False),
    (200, {"errcode": 143104}, False, Reason.RATE_LIMITED, True, False),
    (
        200,
        {"errcode": 90020, "errmsg": "本月api调用量已超过限制"},
        False,
        Reason.QUOTA,
        True,
        False,
    ),
    (
        200,
        {"errcode": 310000, "errmsg": "keywords not in content"},
        False,
        Reason.DINGTALK_CONFIG,
        False,
        False,
    ),
    (
        200,
        {"errcode": 300001, "errmsg": "token is not exist"},
        False,
        Reason.DINGTALK_CONFIG,
        False,
        False,
    ),
    (200, {"errcode": 400013}, False, Reason.DINGTALK_CONFIG, False, False),
    (200, {"errcode": 460101, "errmsg": "message too long"}, False, Reason.TOO_LARGE, False, False),
    (200, {"errcode": 143105}, False, Reason.DINGTALK_REJECTED, False, False),
    (200, {"errcode": 143106}, False, Reason.DINGTALK_REJECTED, False, False),
    (200, {"errcode": 40014}, False, Reason.AUTH, True, True),
    (200, {"errcode": 42001}, False, Reason.AUTH, True, True),
    (200, {"errcode": 40001}, False, Reason.AUTH, True, True),
    (200, {"errcode": 33001}, False, Reason.AUTH, True, True),
    (500, {"errcode": 0}, False, Reason.SERVER_ERROR, True, False),
    (502, "Bad gateway", False, Reason.SERVER_ERROR, True, False),
    (429, "slow down", False, Reason.RATE_LIMITED, True, False),
    (200, "<html>maintenance</html>", False, Reason.SERVER_ERROR, True, False),
    (404, "not found", False, Reason.DINGTALK_CONFIG, False, False),
]


@pytest.mark.parametrize(("status", "body", "ok", "reason", "retryable", "token_invalid"), CASES)
def test_classify(
    status: int, body: object, ok: bool, reason: Reason | None, retryable: bool, token_invalid: bool
) -> None:
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    outcome = classify(status, content)
    assert (outcome.ok, outcome.reason, outcome.retryable, outcome.token_invalid) == (
        ok,
        reason,
        retryable,
        token_invalid,
    )


def test_robot_lockout_waits_out_the_ten_minutes() -> None:
    outcome = classify(200, b'{"errcode":130101,"errmsg":"send too fast"}')
    assert outcome.retry_after == 600.0
    assert outcome.errcode == 130101 and outcome.errmsg == "send too fast"
