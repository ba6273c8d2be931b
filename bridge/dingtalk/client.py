"""The only code that talks to DingTalk over the network.

It takes the pooled `requests.Session` and the clock from its caller (so tests and benchmarks can
hand in their own), turns every transport failure into a DeliveryError with a Reason, and never
puts a URL in an error: robot URLs carry the access token, and requests' own exception messages
quote the URL, so we report the exception's type only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

import requests

from bridge.config.model import RobotTarget, Target, WorkNoticeTarget
from bridge.dingtalk.responses import Outcome, classify
from bridge.dingtalk.robot import robot_bodies
from bridge.dingtalk.signing import signed_query
from bridge.dingtalk.sizing import encode
from bridge.dingtalk.tokens import TokenCache
from bridge.dingtalk.worknotice import unique_line, work_notice_body
from bridge.errors import DeliveryError, Reason
from bridge.model import Message

JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
USER_AGENT = "dingtalk-bridge"


@dataclass(frozen=True)
class Sent:
    """A message DingTalk accepted."""

    errcode: int
    task_id: int | None = None  # work notices: the handle for getsendresult/recall


def _failure(outcome: Outcome, what: str) -> DeliveryError:
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


class DingTalkClient:
    def __init__(
        self,
        session: requests.Session,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session = session
        self.clock = clock
        self.tokens = TokenCache(self._fetch_token, clock)

    # -- transport -----------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        url: str,
        timeout: float,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> Outcome:
        try:
            response = self.session.request(
                method,
                url,
                data=data,
                params=params,
                timeout=timeout,
                headers={**JSON_HEADERS, "User-Agent": USER_AGENT} if data is not None else None,
            )
            content = response.content
        except requests.ConnectTimeout:
            # Never connected, so never sent: unlike a read timeout, DingTalk did not count it.
            raise DeliveryError(
                Reason.NETWORK, "connection failed (ConnectTimeout)", retryable=True
            ) from None
        except requests.Timeout:
            raise DeliveryError(
                Reason.TIMEOUT, f"no answer within {timeout:g}s", retryable=True
            ) from None
        except requests.RequestException as exc:
            raise DeliveryError(
                Reason.NETWORK, f"connection failed ({type(exc).__name__})", retryable=True
            ) from None
        return classify(response.status_code, content)

    # -- robots --------------------------------------------------------------------------------

    def send_robot(self, target: RobotTarget, body: dict[str, Any]) -> Sent:
        """POST one robot body (see dingtalk.robot for building it)."""
        data = encode(body)
        url = target.webhook
        if target.secret:
            # A fresh signature per request: DingTalk rejects timestamps over an hour old.
            url += ("&" if "?" in url else "?") + signed_query(
                int(self.clock() * 1000), target.secret
            )
        outcome = self._call("POST", url, target.timeout, data=data)
        if not outcome.ok:
            raise _failure(outcome, "robot")
        return Sent(errcode=0)

    # -- work notices --------------------------------------------------------------------------

    def _fetch_token(self, api_base: str, app_key: str, app_secret: str) -> tuple[str, float]:
        outcome = self._call(
            "GET",
            f"{api_base}/gettoken",
            timeout=10.0,
            params={"appkey": app_key, "appsecret": app_secret},
        )
        token = outcome.body.get("access_token")
        if not outcome.ok or not isinstance(token, str):
            error = _failure(outcome, "gettoken")
            if outcome.errcode is not None and not outcome.retryable:
                error.reason = Reason.AUTH
            raise error
        expires_in = outcome.body.get("expires_in", 7200)
        return token, float(expires_in) if isinstance(expires_in, int | float) else 7200.0

    def send_work_notice(self, target: WorkNoticeTarget, body: dict[str, Any]) -> Sent:
        """POST one asyncsend_v2 body (see dingtalk.worknotice), refreshing the token once."""
        answer = self.app_call(
            target, "POST", "/topapi/message/corpconversation/asyncsend_v2", body, "work notice"
        )
        task_id = answer.get("task_id")
        return Sent(errcode=0, task_id=task_id if isinstance(task_id, int) else None)

    def get_send_result(self, target: WorkNoticeTarget, task_id: int) -> dict[str, Any]:
        """getsendresult for one asyncsend task: DingTalk's answer (see dingtalk.sendresult to
        read it), or DeliveryError."""
        body = {"agent_id": target.agent_id, "task_id": task_id}
        return self.app_call(
            target, "POST", "/topapi/message/corpconversation/getsendresult", body, "getsendresult"
        )

    def app_call(
        self,
        app: WorkNoticeTarget,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        what: str = "app call",
    ) -> dict[str, Any]:
        """One call with the app's access token (cached and shared; dropped and fetched again
        once if DingTalk says it expired); DingTalk's answer, or DeliveryError."""
        data = encode(body) if body is not None else None
        for attempt in (1, 2):
            token = self.tokens.get(app.api_base, app.app_key, app.app_secret)
            outcome = self._call(
                method,
                f"{app.api_base}{path}",
                app.timeout,
                data=data,
                params={"access_token": token},
            )
            if outcome.ok:
                return outcome.body
            if outcome.token_invalid and attempt == 1:
                self.tokens.invalidate(app.api_base, app.app_key, token)
                continue  # once more with a fresh token
            raise _failure(outcome, what)
        raise AssertionError("unreachable")  # pragma: no cover

    def send(
        self, target: Target, message: Message, message_id: str, accepted_at: float, tz: tzinfo
    ) -> Sent:
        """Send a whole message now, every part of it (for `send-test`; the daemon's senders
        pace parts through the rate limiter instead)."""
        sent = Sent(errcode=0)
        for body in bodies_for(target, message, [message_id], accepted_at, tz):
            if isinstance(target, RobotTarget):
                sent = self.send_robot(target, body)
            else:
                sent = self.send_work_notice(target, body)
        return sent


def bodies_for(
    target: Target, message: Message, ids: Sequence[str], accepted_at: float, tz: tzinfo
) -> list[dict[str, Any]]:
    """The JSON bodies that carry `message` to `target`, in order. `ids` are the outbox ids the
    message carries (several for a digest) and `accepted_at` when the bridge accepted the
    (oldest) one: a work notice's unique line is made of them, never of the send time, so every
    try of one message is the same content (worknotice.unique_line says why)."""
    if isinstance(target, RobotTarget):
        return robot_bodies(message, target.keywords, split=target.policy.split)
    return [work_notice_body(target, message, unique_line(ids, accepted_at, tz))]
