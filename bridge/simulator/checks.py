"""Pure checks of a request's parts, as DingTalk makes them; each raises `Rejected` with the
errcode and errmsg DingTalk answers with (reference/dingtalk.md §1.3, §1.8, §3.1)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from bridge.simulator import codes
from bridge.simulator.crypto import robot_sign_ok
from bridge.simulator.shapes import invalid, missing
from bridge.simulator.spec import AppSpec

JSON = dict[str, Any]

TIMESTAMP_TOLERANCE_MS = 3600 * 1000  # §1.3: at most 1 hour of clock skew
_DIGITS = re.compile(r"[0-9]{1,18}")


class Rejected(Exception):
    """Raised inside a handler to answer with an errcode; caught at the handler's edge."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(errmsg)
        self.errcode = errcode
        self.errmsg = errmsg


def parse_json_object(body: bytes) -> JSON:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(codes.INVALID_PARAMETER, f"不合法的参数 body: not UTF-8 ({exc})") from exc
    if not text.strip():
        raise Rejected(codes.INVALID_PARAMETER, missing("json: the body is empty"))
    try:
        parsed = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise Rejected(
            codes.INVALID_PARAMETER, f"不合法的参数 json: not valid JSON ({exc})"
        ) from exc
    if not isinstance(parsed, dict):
        raise Rejected(
            codes.INVALID_PARAMETER,
            invalid("json", f"body must be a JSON object, not {json_kind(parsed)}"),
        )
    return parsed


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_kind(value: Any) -> str:
    """What a JSON value that is not the expected one is, for an errmsg."""
    return {list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a scalar")


def check_sign(now: float, secret: str, query: Mapping[str, str]) -> None:
    """A signed robot's `timestamp` and `sign` (§1.3); `now` in Unix seconds."""
    timestamp = query.get("timestamp", "")
    sign = query.get("sign", "")
    if not timestamp or not sign:
        raise Rejected(codes.ROBOT_SECURITY_FAILED, codes.MSG_SIGN_NOT_MATCH)
    # Milliseconds as a plain decimal integer; a seconds timestamp lands ~50 years off.
    if (
        not _DIGITS.fullmatch(timestamp)
        or abs(int(timestamp) - now * 1000) > TIMESTAMP_TOLERANCE_MS
    ):
        raise Rejected(codes.ROBOT_SECURITY_FAILED, codes.MSG_INVALID_TIMESTAMP)
    # `sign` was URL-decoded exactly once by query parsing; a sign encoded twice still contains
    # "%2B…" here and fails, exactly like on the real service.
    if not robot_sign_ok(timestamp, secret, sign):
        raise Rejected(codes.ROBOT_SECURITY_FAILED, codes.MSG_SIGN_NOT_MATCH)


def check_agent(body: JSON, app: AppSpec) -> None:
    agent_id = body.get("agent_id")
    if agent_id is None:
        raise Rejected(codes.INVALID_PARAMETER, missing("agent_id"))
    if not isinstance(agent_id, int) or isinstance(agent_id, bool) or agent_id != app.agent_id:
        raise Rejected(codes.INVALID_PARAMETER, "不合法的agentId")


def recipients(body: JSON) -> tuple[list[str], list[str], bool]:
    """(user ids, dept ids, to_all_user). The lists must be comma-separated STRINGS (§3.1);
    a JSON array is the classic client bug and is rejected naming the field."""
    lists: list[list[str]] = []
    for key in ("userid_list", "dept_id_list"):
        value = body.get(key)
        if value is None:
            lists.append([])
            continue
        if not isinstance(value, str):
            raise Rejected(
                codes.INVALID_PARAMETER,
                invalid(
                    key, f'must be a comma-separated string such as "a,b", not {json_kind(value)}'
                ),
            )
        items = [item.strip() for item in value.split(",")]
        lists.append(list(dict.fromkeys(item for item in items if item)))
    to_all = body.get("to_all_user", False)
    if not isinstance(to_all, bool):
        raise Rejected(codes.INVALID_PARAMETER, invalid("to_all_user", "must be a boolean"))
    users, depts = lists
    if not users and not depts and not to_all:
        raise Rejected(codes.NO_RECIPIENT, codes.MSG_NO_RECIPIENT)
    return users, depts, to_all
