"""The `dingtalk_robot` input: @-messages to an enterprise-internal robot (reference §5).

A request is authentic when its `timestamp` header is within `max_age` of now and its `sign`
header is base64(HMAC-SHA256(app_secret, timestamp + "\\n" + app_secret)), compared in constant
time. The text after the @-mention is a command (bridge/commands.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.commands import Sender
from bridge.config.model import ChatInput
from bridge.dingtalk.signing import sign_matches
from bridge.errors import InputError, Reason


@dataclass(frozen=True)
class ChatMessage:
    text: str
    sender: Sender
    session_webhook: str  # "" when DingTalk gave none: then the reply is the HTTP answer


def verify(spec: ChatInput, timestamp: str, sign: str, now: datetime) -> None:
    if not timestamp or not sign:
        raise InputError(401, Reason.UNAUTHORIZED, "missing timestamp or sign header")
    if not timestamp.isdigit() or len(timestamp) > 16:
        raise InputError(400, Reason.BAD_REQUEST, "the timestamp header is not milliseconds")
    sent = int(timestamp) / 1000
    if abs(now.timestamp() - sent) > spec.max_age:
        raise InputError(400, Reason.STALE, "timestamp is outside the allowed window")
    if not sign_matches(timestamp, spec.app_secret, sign):
        raise InputError(401, Reason.UNAUTHORIZED, "bad sign")


def parse_message(spec: ChatInput, body: Any) -> ChatMessage:
    if not isinstance(body, dict):
        raise InputError(400, Reason.BAD_REQUEST, "the body must be a JSON object")
    text = body.get("text")
    content = text.get("content") if isinstance(text, dict) else None
    if body.get("msgtype") != "text" or not isinstance(content, str):
        raise InputError(400, Reason.BAD_REQUEST, "only text messages are commands")
    staff_id = body.get("senderStaffId")
    staff = staff_id if isinstance(staff_id, str) else ""
    nick = body.get("senderNick")
    allowed = (bool(staff) and staff in spec.staff_ids) or (
        spec.admins and body.get("isAdmin") is True
    )
    webhook = body.get("sessionWebhook")
    return ChatMessage(
        text=content.strip(),
        sender=Sender(staff, nick if isinstance(nick, str) and nick else staff, allowed),
        session_webhook=webhook if isinstance(webhook, str) and webhook.startswith("http") else "",
    )


def reply_body(text: str, sender: Sender) -> dict[str, Any]:
    """A text reply that @-mentions the sender (written into the text too, so it pings)."""
    mention = f"@{sender.staff_id} " if sender.staff_id else ""
    return {
        "msgtype": "text",
        "text": {"content": f"{mention}{text}"},
        "at": {"atUserIds": [sender.staff_id] if sender.staff_id else []},
    }
