"""Answers to chat commands, posted into the conversation through the sessionWebhook DingTalk
sent with the command. The answer is judged like any other DingTalk answer (responses.classify):
errors come back as HTTP 200 with an errcode."""

from __future__ import annotations

import requests

from bridge.dingtalk.responses import Outcome, classify
from bridge.errors import Reason

REPLY_TIMEOUT = 5.0  # DingTalk waits for the callback's answer; a slow reply must not hold it


def post_reply(session: requests.Session, session_webhook: str, body: dict[str, object]) -> Outcome:
    """Post `body` to the conversation's sessionWebhook; a network failure is an Outcome too."""
    try:
        response = session.post(session_webhook, json=body, timeout=REPLY_TIMEOUT)
    except requests.RequestException as exc:
        return Outcome(False, Reason.NETWORK, retryable=True, errmsg=type(exc).__name__)
    return classify(response.status_code, response.content)
