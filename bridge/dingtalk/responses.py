"""What DingTalk's answer means. Pure: (HTTP status, body bytes) -> Outcome, and a failed send ->
the typed outcome the sender acts on (`send_outcome`).

DingTalk reports most failures as HTTP 200 with a non-zero `errcode` (reference/dingtalk.md §1.1),
so the JSON body decides; the HTTP status only matters when it is not 200. This is the only module
that knows errcodes: channels and the sender see Reasons and the typed outcomes below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge import jsontext
from bridge.config.model import SendPolicy
from bridge.errors import DeliveryError, Reason

# Access token no longer valid: drop it, fetch a new one, retry once (dingtalk-sdk does the same).
TOKEN_INVALID = frozenset({40001, 40014, 42001, 33001})
# DingTalk locks a robot out for 10 minutes after the 21st call of a minute (§1.7); 143103/143104
# say the app's (or the organisation's) recipients per minute are used up: wait the minute out.
ROBOT_LOCKOUT_CODES = frozenset({130101, 410100})
APP_QUOTA_CODES = frozenset({143103, 143104})
APP_QUOTA_SECONDS = 60.0
RATE_LIMITED = ROBOT_LOCKOUT_CODES | APP_QUOTA_CODES
# The organisation's metered API calls for the calendar month are used up (90020; basic
# organisations get 10,000 a month). DingTalk's help center (dingtalk.com/qidian, help 1061621972)
# documents the code, its v1.0 twin Forbidden.AccessDenied.ApiCountLimitForOrg, and that the count
# is per natural month. When it returns (next month, or a purchase) is not knowable from here, so
# the sender waits policy.quota_wait and asks again with one call.
MONTHLY_QUOTA_CODES = frozenset({90020})
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
        body = jsontext.loads(content)
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
        wait = ROBOT_LOCKOUT_SECONDS if errcode in ROBOT_LOCKOUT_CODES else APP_QUOTA_SECONDS
        return Outcome(False, Reason.RATE_LIMITED, retryable=True, retry_after=wait, **common)
    if errcode in MONTHLY_QUOTA_CODES:
        return Outcome(False, Reason.QUOTA, retryable=True, **common)
    if errcode in TOKEN_INVALID:
        return Outcome(False, Reason.AUTH, retryable=True, token_invalid=True, **common)
    if errcode in TOO_LARGE:
        return Outcome(False, Reason.TOO_LARGE, **common)
    if errcode in CONFIG or 400000 <= errcode < 500000:  # 400xxx, 430xxx: group gone, robot off
        return Outcome(False, Reason.DINGTALK_CONFIG, **common)
    return Outcome(False, Reason.DINGTALK_REJECTED, **common)


def as_error(outcome: Outcome, what: str) -> DeliveryError:
    """A refused call as the error its caller raises (`what`: "robot", "gettoken", ...)."""
    detail = (
        f"errcode {outcome.errcode}: {outcome.errmsg}"
        if outcome.errcode is not None
        else outcome.errmsg
    )
    return DeliveryError(
        outcome.reason or Reason.DINGTALK_REJECTED,
        f"{what} refused ({detail})",
        retryable=outcome.retryable,
        errcode=outcome.errcode,
        errmsg=outcome.errmsg,
        retry_after=outcome.retry_after,
    )


# -- what one send came to, typed: the sender acts on these, never on errcodes -----------------


FLOW_CONTROLLED = "flow_controlled"  # a user DingTalk did not deliver to for now: try again


@dataclass(frozen=True)
class Receipt:
    """What DingTalk said of one app-robot send it took (reference/dingtalk.md §6): the key to
    recall it by, where it went, and the users of a one-to-one send it did not deliver to
    (`invalidStaffIdList`, `flowControlledStaffIdList`, `filteredStaffIdList`)."""

    process_query_key: str
    robot_code: str
    conversation: str | None  # the openConversationId of a group send; None: one-to-one
    users: tuple[str, ...] = ()  # the users a one-to-one send was for
    invalid: tuple[str, ...] = ()
    flow_controlled: tuple[str, ...] = ()
    filtered: tuple[str, ...] = ()
    card: str = ""  # an interactive card's outTrackId (dingtalk/cards.py): the call delivered it

    def refused(self) -> tuple[tuple[str, str], ...]:
        """(user id, why) for every user DingTalk did not deliver to."""
        return (
            *((u, "invalid_user") for u in self.invalid),
            *((u, FLOW_CONTROLLED) for u in self.flow_controlled),
            *((u, "filtered") for u in self.filtered),
        )


@dataclass(frozen=True)
class Delivered:
    """DingTalk took the body, and that is the end of it (a robot's errcode 0). `receipt`: what
    an app robot's answer said about it (None for the other channels)."""

    receipt: Receipt | None = None


@dataclass(frozen=True)
class AwaitingResult:
    """DingTalk queued the body (asyncsend_v2's errcode 0): who received it is known only later,
    by asking for the result of `task_id` (delivery/noticepoll.py)."""

    task_id: int


@dataclass(frozen=True, kw_only=True)
class Failed:
    """The send failed. `detail` is one line for the log (never a URL: it may hold a token);
    `errcode`/`errmsg` are DingTalk's when it answered; `retry_after` is DingTalk's own wait,
    the least a retry waits."""

    reason: Reason
    detail: str
    errcode: int | None = None
    errmsg: str | None = None
    retry_after: float | None = None

    @property
    def counted(self) -> bool:
        """Did DingTalk's rate counter see the call? It did if it answered with an errcode, and
        may have if we stopped waiting for its answer. A 5xx, a connection that failed, a page
        that is not its JSON, an HTTP 429 from a gateway: its counter never saw the call."""
        return self.errcode is not None or self.reason is Reason.TIMEOUT


@dataclass(frozen=True, kw_only=True)
class Refused(Failed):
    """Permanent: sending it again cannot help (a config error, too large, rejected)."""


@dataclass(frozen=True, kw_only=True)
class RetryLater(Failed):
    """Try again after a backoff."""

    @property
    def outage(self) -> bool:
        """The robot (or DingTalk), not this message, is failing: no answer we could read, or
        DingTalk says it is busy. Probe with one message at a time until it answers again."""
        return self.errcode is None or self.reason is Reason.DINGTALK_BUSY


@dataclass(frozen=True, kw_only=True)
class LockedOut(Failed):
    """DingTalk takes no call from this robot (or app) for `seconds`: every target sharing it
    waits that out rather than extend the lockout with more calls."""

    seconds: float


SendOutcome = Delivered | AwaitingResult | Refused | RetryLater | LockedOut


def send_outcome(error: DeliveryError, policy: SendPolicy) -> Refused | RetryLater | LockedOut:
    """A send that raised `error`, as the sender's outcome. `policy`: the target's, which says
    how long a robot lockout lasts (DingTalk's 10 minutes unless told otherwise) and how long to
    wait once the organisation's monthly quota is used up."""
    fields: dict[str, Any] = {
        "reason": error.reason,
        "detail": str(error),
        "errcode": error.errcode,
        "errmsg": error.errmsg,
        "retry_after": error.retry_after,
    }
    if not error.retryable:
        return Refused(**fields)
    if error.reason is Reason.RATE_LIMITED and error.errcode in ROBOT_LOCKOUT_CODES:
        return LockedOut(seconds=policy.lockout, **fields)
    if error.reason is Reason.QUOTA:
        return LockedOut(seconds=policy.quota_wait, **fields)
    if error.reason is Reason.RATE_LIMITED and error.errcode in APP_QUOTA_CODES:
        return LockedOut(seconds=error.retry_after or APP_QUOTA_SECONDS, **fields)
    return RetryLater(**fields)
