"""What getsendresult says about one work notice, per recipient. Pure.

asyncsend_v2 answers errcode 0 as soon as DingTalk has queued a notice; who then received it is
known only from getsendresult (reference/dingtalk.md §3.2): `read_user_id_list` and
`unread_user_id_list` got it, `forbidden_user_id_list` (with the reason per user in
`forbidden_list`: 143105 daily limit, 143106 same content today, 143103/143104 flow control),
`invalid_user_id_list` and `failed_user_id_list` did not.

A 143106 is read as "received": every notice the bridge sends carries a line unique to the message
(worknotice.unique_line), so the only way the same content reached the user earlier today is an
earlier try of this very message (one whose answer was lost, say, to a timeout). DingTalk dropped
the repeat because the user already has it.

The answer comes from outside: every field is checked, nothing is trusted to be a list of strings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.errors import Reason

DUPLICATE = "143106"  # same content to the same user today: the user has it already
INVALID_USER = "invalid_user"  # in invalid_user_id_list: no such user id in the organisation
FAILED = "failed"  # in failed_user_id_list
FORBIDDEN = "forbidden"  # in forbidden_user_id_list without a code in forbidden_list
# Flow control per minute (internal app 1431xx, third-party app 1432xx): another try gets through.
RETRYABLE = frozenset({"143103", "143104", "143203", "143204"})
# Per-user daily limit: tomorrow, or after `outbox retry`, it may get through.
DAILY_LIMIT = frozenset({"143105", "143205"})
MAX_ERRMSG = 500


@dataclass(frozen=True)
class Refusal:
    userid: str
    code: str  # DingTalk's forbidden code ("143105"), or INVALID_USER / FAILED / FORBIDDEN


@dataclass(frozen=True)
class SendResult:
    received: tuple[str, ...] = ()  # read or unread: DingTalk delivered it
    duplicates: tuple[str, ...] = ()  # 143106: had this content already (an earlier try)
    refused: tuple[Refusal, ...] = ()
    invalid_depts: tuple[str, ...] = ()

    def users(self) -> set[str]:
        """Every user the answer accounts for."""
        return {*self.received, *self.duplicates, *(r.userid for r in self.refused)}

    def got_it(self) -> tuple[str, ...]:
        return (*self.received, *self.duplicates)

    def codes(self) -> Counter[str]:
        return Counter(r.code for r in self.refused)


@dataclass(frozen=True)
class Verdict:
    """What becomes of the message: 'delivered' (everyone named got it), 'partial' (some did,
    some were refused), 'dead' (nobody got it: reason/errcode/errmsg for the dead letter), or
    'retry' (refused for flow control only: send again, DingTalk's dedup absorbs those who have
    it)."""

    outcome: str
    reason: Reason | None = None
    errcode: int | None = None
    errmsg: str | None = None


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str) and item]


def _code(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    return None


def parse_send_result(answer: Mapping[str, Any]) -> SendResult:
    """getsendresult's JSON answer (errcode 0) -> SendResult; ValueError if it has no
    `send_result` object. A user listed twice counts once, received winning over refused
    (DingTalk lists a user once; if not, the delivery is what the user sees)."""
    result = answer.get("send_result")
    if not isinstance(result, Mapping):
        raise ValueError("getsendresult answer has no send_result object")
    received = list(
        dict.fromkeys(
            _strings(result.get("read_user_id_list")) + _strings(result.get("unread_user_id_list"))
        )
    )
    codes: dict[str, str] = {}
    entries = result.get("forbidden_list")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping) and isinstance(entry.get("userid"), str):
            code = _code(entry.get("code"))
            if code is not None:
                codes.setdefault(entry["userid"], code)
    forbidden = _strings(result.get("forbidden_user_id_list"))
    # A user in forbidden_list but missing from forbidden_user_id_list is still forbidden.
    forbidden += [user for user in codes if user not in forbidden]
    duplicates: list[str] = []
    refused: list[Refusal] = []
    seen = set(received)
    for user in forbidden:
        if user in seen:
            continue
        seen.add(user)
        code = codes.get(user, FORBIDDEN)
        if code == DUPLICATE:
            duplicates.append(user)
        else:
            refused.append(Refusal(user, code))
    for key, code in (("invalid_user_id_list", INVALID_USER), ("failed_user_id_list", FAILED)):
        for user in _strings(result.get(key)):
            if user not in seen:
                seen.add(user)
                refused.append(Refusal(user, code))
    return SendResult(
        received=tuple(received),
        duplicates=tuple(duplicates),
        refused=tuple(refused),
        invalid_depts=tuple(_strings(result.get("invalid_dept_id_list"))),
    )


def is_final(
    result: SendResult, expected: Sequence[str] | None, previous: SendResult | None
) -> bool:
    """Has DingTalk finished with this task? The send is asynchronous: early answers list only
    part of the recipients. With a known list of user ids (`expected`), final once every one is
    accounted for. Sent to departments or everyone, the bridge cannot know who is meant: final
    once an answer names someone and the next answer is the same."""
    if expected is not None:
        return bool(expected) and set(expected) <= result.users()
    return bool(result.users() or result.invalid_depts) and result == previous


def judge(result: SendResult, may_retry: bool) -> Verdict:
    """The message's fate from a final result. `may_retry`: the message is not too old to try
    again (the target's give_up_after)."""
    got = result.got_it()
    codes = result.codes()
    flow_controlled = sorted(code for code in codes if code in RETRYABLE)
    if may_retry and flow_controlled:
        # Send the whole message again: whoever has it already is absorbed by DingTalk's dedup
        # (same content: 143106, read as received), the others get their chance.
        return Verdict("retry", Reason.RATE_LIMITED, int(flow_controlled[0]))
    if not result.refused:
        return Verdict("delivered")
    if got:
        return Verdict("partial")
    code = sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    return Verdict(
        "dead",
        _reason(code),
        int(code) if code.isdigit() else None,
        _clip("nobody received it: " + refusal_summary(result.refused)),
    )


def _reason(code: str) -> Reason:
    if code in DAILY_LIMIT or code in RETRYABLE:
        return Reason.RATE_LIMITED
    if code == INVALID_USER:
        return Reason.DINGTALK_CONFIG  # the config names a user id DingTalk does not know
    return Reason.DINGTALK_REJECTED


def refusal_summary(refused: Iterable[Refusal]) -> str:
    """'u1 143105, u2 invalid_user' (for errmsg and the log)."""
    return ", ".join(f"{r.userid} {r.code}" for r in refused)


def code_counts(refused: Iterable[Refusal]) -> str:
    """'143105:2,invalid_user:1' (for the log line)."""
    counts = Counter(r.code for r in refused)
    return ",".join(f"{code}:{n}" for code, n in sorted(counts.items()))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERRMSG else text[: MAX_ERRMSG - 1] + "…"
