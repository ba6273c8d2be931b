"""The only code that talks to DingTalk over the network.

It takes the pooled `requests.Session` and the clock from its caller (so tests and benchmarks can
hand in their own), turns every transport failure into a DeliveryError with a Reason, and never
puts a URL in an error: robot URLs carry the access token, and requests' own exception messages
quote the URL, so we report the exception's type only. It knows no target types: the channels
(dingtalk/robot.py, dingtalk/worknotice.py) build the bodies and say where they go.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import requests

from bridge.clock import SYSTEM_CLOCK, Clock
from bridge.config.model import WorkNoticeTarget
from bridge.dingtalk.openapi import OpenApi
from bridge.dingtalk.responses import Outcome, as_error, classify
from bridge.dingtalk.sizing import encode
from bridge.dingtalk.tokens import TokenCache
from bridge.errors import DeliveryError, Reason

JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
USER_AGENT = "dingtalk-bridge"


class DingTalkClient:
    def __init__(self, session: requests.Session, clock: Clock = SYSTEM_CLOCK) -> None:
        self.session = session
        self.clock = clock
        self.tokens = TokenCache(self._fetch_token, clock)
        self.v1 = OpenApi(self)  # the v1.0 API's calls and tokens (api.dingtalk.com)

    # -- transport -----------------------------------------------------------------------------

    def call(
        self,
        method: str,
        url: str,
        timeout: float,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        parse: Callable[[int, bytes], Outcome] = classify,
    ) -> Outcome:
        """One HTTP call and what DingTalk's answer means (`parse`: the oapi reading by
        default; the v1.0 API answers in its own way, dingtalk/openapi.py); DeliveryError if
        none came. `headers`: extra ones (the v1.0 access token travels in a header)."""
        sent = {**JSON_HEADERS, "User-Agent": USER_AGENT} if data is not None else {}
        try:
            response = self.session.request(
                method,
                url,
                data=data,
                params=params,
                timeout=timeout,
                headers={**sent, **headers} if headers else (sent or None),
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
        return parse(response.status_code, content)

    # -- internal apps (work notices, callbacks) ------------------------------------------------

    def _fetch_token(self, api_base: str, app_key: str, app_secret: str) -> tuple[str, float]:
        outcome = self.call(
            "GET",
            f"{api_base}/gettoken",
            timeout=10.0,
            params={"appkey": app_key, "appsecret": app_secret},
        )
        token = outcome.body.get("access_token")
        if not outcome.ok or not isinstance(token, str):
            error = as_error(outcome, "gettoken")
            if outcome.errcode is not None and not outcome.retryable:
                error.reason = Reason.AUTH
            raise error
        expires_in = outcome.body.get("expires_in", 7200)
        return token, float(expires_in) if isinstance(expires_in, int | float) else 7200.0

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
        outcome = self.tokens.with_token(
            app.api_base,
            app.app_key,
            app.app_secret,
            lambda token: self.call(
                method,
                f"{app.api_base}{path}",
                app.timeout,
                data=data,
                params={"access_token": token},
            ),
            lambda outcome: outcome.token_invalid,
        )
        if outcome.ok:
            return outcome.body
        raise as_error(outcome, what)
