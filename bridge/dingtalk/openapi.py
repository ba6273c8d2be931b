"""DingTalk's v1.0 API (`api.dingtalk.com`): its token, its calls, and what its answers mean.

The v1.0 API differs from the oapi one in three ways that matter here (reference/dingtalk.md
§2.2, §6):
- the token comes from `POST /v1.0/oauth2/accessToken` (`{appKey, appSecret}` ->
  `{accessToken, expireIn}`) and travels in the header `x-acs-dingtalk-access-token`;
- errors are HTTP 4xx/5xx with `{code, message, requestid}`, `code` a dotted word
  (`invalidParameter.userIds.overMax`), not HTTP 200 with a numeric `errcode`;
- success is HTTP 200 with the answer's own fields (no errcode at all).

`classify_v1` reads both styles (a gateway in front may still answer oapi-style), so every
answer becomes one `Outcome`; `CODES` is the one table of which v1.0 codes are permanent and
which are worth another try. A v1.0 refusal is recorded with the HTTP status as its errcode and
DingTalk's code opening the errmsg ("invalidParameter.robotCode.notExsit: ..."), so a dead
letter says both.

`OpenApi` is one per process (it lives on the DingTalkClient): the v1.0 tokens, cached in a
TokenCache of their own (the oapi token of the same app is another token, and the simulator
serves both from one host), and counters for /metrics.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bridge import jsontext
from bridge.dingtalk.responses import Outcome, as_error, classify
from bridge.dingtalk.sizing import encode
from bridge.dingtalk.tokens import TokenCache
from bridge.errors import DeliveryError, Reason

if TYPE_CHECKING:
    from bridge.dingtalk.client import DingTalkClient

DEFAULT_OPENAPI_BASE = "https://api.dingtalk.com"
TOKEN_PATH = "/v1.0/oauth2/accessToken"
TOKEN_HEADER = "x-acs-dingtalk-access-token"
DEFAULT_TOKEN_TTL = 7200.0  # §2.2: expireIn is 7200 s
# A throttled call waits at least this long: DingTalk's QPS limits count per second (uncertain:
# see docs/dingtalk-v1.md), so a couple of seconds clears one without hammering it.
THROTTLE_WAIT = 2.0
MAX_MESSAGE = 500


@dataclass(frozen=True)
class CodeRule:
    """What a v1.0 error code means to the sender."""

    reason: Reason
    retryable: bool = False
    token_invalid: bool = False
    retry_after: float | None = None


_CONFIG = CodeRule(Reason.DINGTALK_CONFIG)
_THROTTLED = CodeRule(Reason.RATE_LIMITED, retryable=True, retry_after=THROTTLE_WAIT)

# v1.0 error codes, exact ones first, then prefixes (a code matches the longest prefix listed).
# Sources: D = reference/dingtalk.md §6 (help.dingtalk.io's error table for the robot APIs),
# R = reported in public code and forum answers (see docs/dingtalk-v1.md), U = uncertain.
CODES: dict[str, CodeRule] = {
    # The token is not (or no longer) one DingTalk issued: drop it, fetch one, try once more;
    # if a fresh token fails the same way the app itself is wrong. (D: robot error table)
    "token.notExisted": CodeRule(Reason.AUTH, token_invalid=True),
    # HTTP 401's usual code for a missing, malformed or expired token. (R: SDK issues)
    "InvalidAuthentication": CodeRule(Reason.AUTH, retryable=True, token_invalid=True),
    # The app's calls per second to this API (or in all) are used up: wait and try again.
    # (R: DingTalk's API gateway answers HTTP 403 with these; the simulator does too)
    "Forbidden.AccessDenied.QpsLimitForApi": _THROTTLED,
    "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi": _THROTTLED,
    # The organisation's metered calls for this month are used up: every target of the app
    # waits `retry.quota_wait`, then asks again (D: dingtalk.com/qidian help 1061621972, the
    # v1.0 twin of oapi errcode 90020; see responses.MONTHLY_QUOTA_CODES).
    "Forbidden.AccessDenied.ApiCountLimitForOrg": CodeRule(Reason.QUOTA, retryable=True),
    # The app lacks the permission (qyapi_robot_sendmsg) in the developer console. (R)
    "Forbidden.AccessDenied.AccessTokenPermissionDenied": _CONFIG,
    # The group was disbanded: no message will ever reach it. (D)
    "group.disbanded": _CONFIG,
    # The robot was stopped (disabled) in the console. (D)
    "bot.stopped": _CONFIG,
    # msgParam over 15,000 bytes: the same body will never fit. (D)
    "invalidParameter.msgParam.tooLong": CodeRule(Reason.TOO_LARGE),
    # Throttling: sending too fast, to too many groups or people. (U: a third-party design
    # document, not official material; treated as "wait and try again")
    "send.too.fast": _THROTTLED,
    "send.byToken.tooFast": _THROTTLED,
    "too.many.group": _THROTTLED,
    "too.many.people": _THROTTLED,
    # DingTalk's own trouble: try again later. (R: seen as HTTP 500/503 codes)
    "systemError": CodeRule(Reason.DINGTALK_BUSY, retryable=True),
    "ServiceUnavailable": CodeRule(Reason.DINGTALK_BUSY, retryable=True),
}
PREFIXES: dict[str, CodeRule] = {
    # Any bad argument: robotCode empty/unknown/not ours, userIds over 20, msgKey unknown,
    # msgParam not JSON... The config (or our body) must change. (D)
    "invalidParameter.": _CONFIG,
    # A required field missing. (D)
    "miss.param.": _CONFIG,
    # The Alibaba API gateway's throttling family (Throttling, Throttling.Api,
    # Throttling.User...), answered with HTTP 429 or 403. (R)
    "Throttling": _THROTTLED,
}


def rule_for(code: str) -> CodeRule | None:
    """The table's rule for a v1.0 `code`, or None when it lists none."""
    if code in CODES:
        return CODES[code]
    matches = [prefix for prefix in PREFIXES if code.startswith(prefix)]
    return PREFIXES[max(matches, key=len)] if matches else None


def classify_v1(http_status: int, content: bytes) -> Outcome:
    """A v1.0 answer -> Outcome. Pure, and total: any bytes give an Outcome.

    HTTP 200 with a JSON object is success unless it carries a non-zero oapi `errcode` (then the
    oapi reading decides). Otherwise the JSON `code` decides by the table; a code the table does
    not list is permanent on a 4xx and worth another try on a 5xx. No readable code: 5xx and
    429 are tried again, anything else is permanent."""
    try:
        body = jsontext.loads(content) if content else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        body = None
    if isinstance(body, dict) and "errcode" in body and "code" not in body:
        return classify(http_status, content)  # an oapi-style answer
    if http_status == 200:
        if isinstance(body, dict):
            return Outcome(True, errcode=0, body=body)
        return Outcome(False, Reason.SERVER_ERROR, retryable=True, errmsg="response is not JSON")
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or not code:
        if http_status >= 500:
            return Outcome(False, Reason.SERVER_ERROR, retryable=True, errmsg=f"HTTP {http_status}")
        if http_status == 429:
            return Outcome(
                False,
                Reason.RATE_LIMITED,
                retryable=True,
                errmsg="HTTP 429",
                retry_after=THROTTLE_WAIT,
            )
        if http_status == 401:
            return Outcome(
                False, Reason.AUTH, retryable=True, token_invalid=True, errmsg="HTTP 401"
            )
        return Outcome(False, Reason.DINGTALK_CONFIG, errmsg=f"HTTP {http_status}")
    message = body.get("message") if isinstance(body, dict) else None
    errmsg = f"{code}: {message}" if isinstance(message, str) and message else code
    errmsg = errmsg[:MAX_MESSAGE]
    rule = rule_for(code)
    if rule is None:
        if http_status == 401:
            rule = CodeRule(Reason.AUTH, retryable=True, token_invalid=True)
        elif http_status == 429:
            rule = _THROTTLED
        elif http_status >= 500:
            rule = CodeRule(Reason.SERVER_ERROR, retryable=True)
        else:
            rule = CodeRule(Reason.DINGTALK_REJECTED)
    return Outcome(
        False,
        rule.reason,
        retryable=rule.retryable,
        errcode=http_status,
        errmsg=errmsg,
        token_invalid=rule.token_invalid,
        retry_after=rule.retry_after,
        body=body if isinstance(body, dict) else {},
    )


@dataclass(frozen=True)
class App:
    """Whose token a v1.0 call carries: an app's key and secret, and the API's base URL."""

    api_base: str
    app_key: str
    app_secret: str


class OpenApi:
    """The v1.0 calls of one process: tokens cached per app, one retry on a dropped token, and
    counters for /metrics (calls and throttled answers per API path)."""

    def __init__(self, client: DingTalkClient) -> None:
        self.client = client
        self.tokens = TokenCache(self._fetch_token, client.clock)
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()  # per API path
        self.throttled: Counter[str] = Counter()  # per API path: throttling answers
        self.refused_users: Counter[str] = Counter()  # per reason (invalid, flow_controlled...)

    def count_refused(self, reason: str, users: int) -> None:
        if users:
            with self._lock:
                self.refused_users[reason] += users

    def _count(self, path: str, outcome: Outcome | None) -> None:
        with self._lock:
            self.calls[path] += 1
            if outcome is not None and outcome.reason is Reason.RATE_LIMITED:
                self.throttled[path] += 1

    def _fetch_token(self, api_base: str, app_key: str, app_secret: str) -> tuple[str, float]:
        data = encode({"appKey": app_key, "appSecret": app_secret})
        try:
            outcome = self.client.call(
                "POST", f"{api_base}{TOKEN_PATH}", 10.0, data=data, parse=classify_v1
            )
        except DeliveryError:
            self._count(TOKEN_PATH, None)
            raise
        self._count(TOKEN_PATH, outcome)
        token = outcome.body.get("accessToken")
        if not outcome.ok or not isinstance(token, str) or not token:
            error = as_error(outcome, "v1.0 accessToken")
            if not outcome.retryable:
                error.reason = Reason.AUTH
            raise error
        expire_in = outcome.body.get("expireIn", DEFAULT_TOKEN_TTL)
        valid = isinstance(expire_in, int | float) and not isinstance(expire_in, bool)
        return token, float(expire_in) if valid and expire_in > 0 else DEFAULT_TOKEN_TTL

    def call(
        self,
        app: App,
        path: str,
        body: dict[str, Any],
        timeout: float,
        what: str,
        method: str = "POST",
    ) -> dict[str, Any]:
        """POST (or `method`: a card update is a PUT) `body` to `path` with the app's v1.0 token
        (fetched again, and the call made once more, if DingTalk says the token is no good);
        the answer, or DeliveryError."""
        data = encode(body)

        def call(token: str) -> Outcome:
            try:
                outcome = self.client.call(
                    method,
                    f"{app.api_base}{path}",
                    timeout,
                    data=data,
                    headers={TOKEN_HEADER: token},
                    parse=classify_v1,
                )
            except DeliveryError:
                self._count(path, None)
                raise
            self._count(path, outcome)
            return outcome

        outcome = self.tokens.with_token(
            app.api_base, app.app_key, app.app_secret, call, lambda o: o.token_invalid
        )
        if outcome.ok:
            return outcome.body
        raise as_error(outcome, what)
