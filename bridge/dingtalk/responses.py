"""What DingTalk's answer means. Pure: (HTTP status, body bytes) -> Outcome.

DingTalk reports most failures as HTTP 200 with a non-zero `errcode` (reference/dingtalk.md §1.1),
so the JSON body decides; the HTTP status only matters when it is not 200.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bridge.errors import Reason

# Access token no longer valid: drop it, fetch a new one, retry once (dingtalk-sdk does the same).
TOKEN_INVALID = frozenset({40001, 40014, 42001, 33001})
RATE_LIMITED = frozenset({130101, 410100, 143103, 143104})
TOO_LARGE = frozenset({460101, 101002})
# Fix-the-config errors: keyword/sign/ip (310000), bad robot token, bad arguments, bad app secret.
CONFIG = frozenset({310000, 300001, 300005, 40035, 40089, 88, 1430000})
# How long a robot stays throttled after 130101 (§1.7): retrying sooner only extends nothing.
ROBOT_LOCKOUT_SECONDS = 600.0


@dataclass(frozen=True)
class Outcome:
    ok: bool
    reason: Reason | None = None
    retryable: bool = False
    errcode: int | None = None
    errmsg: str = ""
    token_invalid: bool = False
    retry_after: float | None = None
    body: dict[str, Any] = field(default_factory=dict)


def classify(http_status: int, content: bytes) -> Outcome:
    if http_status >= 500:
        return Outcome(False, Reason.SERVER_ERROR, retryable=True, errmsg=f"HTTP {http_status}")
    if http_status == 429:
        return Outcome(False, Reason.RATE_LIMITED, retryable=True, errmsg="HTTP 429")
    try:
        body = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        if http_status != 200:
            return Outcome(False, Reason.DINGTALK_CONFIG, errmsg=f"HTTP {http_status}")
        # A 200 whose body is not DingTalk's JSON: a proxy or an outage page. Try again later.
        return Outcome(False, Reason.SERVER_ERROR, retryable=True, errmsg="response is not JSON")
    errcode = body.get("errcode", 0 if http_status == 200 else None)
    errmsg = str(body.get("errmsg", ""))[:500]
    if not isinstance(errcode, int):
        return Outcome(False, Reason.DINGTALK_CONFIG, errmsg=f"HTTP {http_status}", body=body)
    if errcode == 0:
        return Outcome(True, errcode=0, errmsg=errmsg, body=body)
    common: dict[str, Any] = {"errcode": errcode, "errmsg": errmsg, "body": body}
    if errcode == -1:
        return Outcome(False, Reason.DINGTALK_BUSY, retryable=True, **common)
    if errcode in RATE_LIMITED:
        wait = ROBOT_LOCKOUT_SECONDS if errcode in (130101, 410100) else 60.0
        return Outcome(False, Reason.RATE_LIMITED, retryable=True, retry_after=wait, **common)
    if errcode in TOKEN_INVALID:
        return Outcome(False, Reason.AUTH, retryable=True, token_invalid=True, **common)
    if errcode in TOO_LARGE:
        return Outcome(False, Reason.TOO_LARGE, **common)
    if errcode in CONFIG or 400000 <= errcode < 500000:  # 400xxx, 430xxx: group gone, robot off
        return Outcome(False, Reason.DINGTALK_CONFIG, **common)
    return Outcome(False, Reason.DINGTALK_REJECTED, **common)
