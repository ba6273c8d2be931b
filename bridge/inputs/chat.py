"""The `dingtalk_robot` input: @-messages to an enterprise-internal robot (reference §5).

A request is authentic when its `timestamp` header is within the window (`max_age` back, a
minute ahead: bridge/inputs/signed.py) and its `sign` header is
base64(HMAC-SHA256(app_secret, timestamp + "\\n" + app_secret)), compared in constant time. The
text after the @-mention is a command (bridge/commands.py).

The sign covers the timestamp only, not the body: a captured request's headers would carry any
other body (`"isAdmin": true`) for the whole window. So each timestamp+sign pair is used once:
`once` is what the caller remembers in the store before the command runs, and a second use is
refused (409), whatever its body. (Two messages DingTalk signs in the same millisecond would
share a pair; the second is refused and the user sends it again.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.config.model import ChatInput
from bridge.dingtalk.signing import sign_matches
from bridge.errors import InputError, Reason
from bridge.inputs import jsonbody, signed
from bridge.inputs.kind import InputRuntime
from bridge.inputs.request import Request, Sink
from bridge.inputs.streamframes import Frame
from bridge.model import ChatSender


@dataclass(frozen=True)
class ChatMessage:
    text: str
    sender: ChatSender
    session_webhook: str  # "" when DingTalk gave none: then the reply is the HTTP answer


def verify(spec: ChatInput, timestamp: str, sign: str, now: datetime) -> float:
    """The time the request was signed at, once its headers prove it came from DingTalk."""
    if not timestamp or not sign:
        raise InputError(401, Reason.UNAUTHORIZED, "missing timestamp or sign header")
    sent = signed.sent_at(timestamp, "the timestamp header")
    signed.check_window(sent, now.timestamp(), spec.max_age, "the timestamp header")
    if not sign_matches(timestamp, spec.app_secret, sign):
        raise InputError(401, Reason.UNAUTHORIZED, "bad sign")
    return sent


def once(
    spec: ChatInput, timestamp: str, sign: str, sent: float, raw_body: bytes
) -> signed.SignedOnce:
    """What the store remembers of a verified request until its timestamp leaves the window."""
    return signed.SignedOnce(
        input=spec.name,
        key=f"chat\n{timestamp}\n{sign}",
        digest=signed.digest(raw_body.decode("utf-8", "replace")),
        expires=signed.expires(sent, spec.max_age),
    )


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
    conversation = body.get("conversationId")
    return ChatMessage(
        text=content.strip(),
        sender=ChatSender(
            staff,
            nick if isinstance(nick, str) and nick else staff,
            allowed,
            conversation if isinstance(conversation, str) else "",
        ),
        session_webhook=webhook if isinstance(webhook, str) and webhook.startswith("http") else "",
    )


def reply_body(text: str, sender: ChatSender) -> dict[str, Any]:
    """A text reply that @-mentions the sender (written into the text too, so it pings)."""
    mention = f"@{sender.staff_id} " if sender.staff_id else ""
    return {
        "msgtype": "text",
        "text": {"content": f"{mention}{text}"},
        "at": {"atUserIds": [sender.staff_id] if sender.staff_id else []},
    }


def serve(request: Request, spec: ChatInput, sink: Sink) -> Mapping[str, Any]:
    """A command from the chat: the sign first, then the body, then its single use."""
    timestamp = request.header("HTTP_TIMESTAMP")
    sign = request.header("HTTP_SIGN")
    sent = verify(spec, timestamp, sign, request.clock.now())
    raw = request.body(spec.max_body_bytes)
    message = parse_message(spec, jsonbody.loads(raw))
    sink.claim(once(spec, timestamp, sign, sent, raw))  # 409 on a second use
    return sink.command(spec, message)


def take_streamed(spec: ChatInput, frame: Frame, sink: Sink, now: float) -> None:
    """A robot message that came over Stream (acknowledged already): the same command as over
    HTTP, once. DingTalk may send it again (after a late ack, or on another connection after a
    reconnect; reported, §7), so it is remembered in the store under both its frame's
    `messageId` and the message's own `msgId` before the command runs: a second copy, here or
    at a replica sharing the store, is refused with 409. Raises InputError."""
    message = parse_message(spec, frame.data)
    expires = now + spec.max_age + 1.0
    sink.claim(
        signed.SignedOnce(
            spec.name, f"stream\n{frame.message_id}", signed.digest(frame.raw_data), expires
        )
    )
    msg_id = frame.data.get("msgId")  # parse_message has made sure data is an object
    if isinstance(msg_id, str) and msg_id:
        sink.claim(signed.SignedOnce(spec.name, f"msg\n{msg_id[:256]}", "", expires))
    sink.command(spec, message)


KIND = InputRuntime(type="dingtalk_robot", serve=serve, takes="chat commands")
