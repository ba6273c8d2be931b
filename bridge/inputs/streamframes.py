"""DingTalk Stream mode's wire format, pure: opening a connection, reading a frame, writing its
acknowledgement, and how long to wait before connecting again (Stream reference §1-§6). The
socket and the thread that owns it are in bridge/app/streams.py.

A frame is text from outside: it is read with the guarded JSON of jsonbody.py (depth, digits,
UTF-8) twice, since its `data` is JSON in a string; anything that is not a frame is an
InputError naming what is wrong, never an exception of another kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote_plus

from bridge import jsontext
from bridge.errors import bad_request
from bridge.inputs import jsonbody

OPEN_PATH = "/v1.0/gateway/connections/open"
ROBOT_TOPIC = "/v1.0/im/bot/messages/get"  # robot messages (@ in a group, anything 1:1)
CARD_TOPIC = "/v1.0/card/instances/callback"  # interactive-card clicks
EVENT_TOPIC = "*"  # EVENT subscriptions take only "*": events are chosen in the console
MAX_FRAME_BYTES = 1 << 20  # the socket refuses a larger message (websockets' max_size)
BACKOFF_CAP = 60.0
UA = "dingtalk-bridge"

FrameType = Literal["SYSTEM", "EVENT", "CALLBACK"]
_TYPES: tuple[FrameType, ...] = ("SYSTEM", "EVENT", "CALLBACK")
_MAX_ID = 256  # messageIds are ~30 characters; the replay memory keys on them


@dataclass(frozen=True)
class Frame:
    type: FrameType
    topic: str
    message_id: str
    data: Any  # `data` decoded
    raw_data: str  # `data` as it came (a ping's answer echoes it)
    headers: Mapping[str, Any]


def _text(raw: str | bytes, what: str) -> str:
    return jsonbody.utf8_text(raw, what) if isinstance(raw, bytes) else raw


def parse_frame(raw: str | bytes) -> Frame:
    """A frame from the socket (raises InputError 400 saying what is wrong)."""
    message = jsonbody.loads(_text(raw, "the frame"), "the frame")
    if not isinstance(message, dict):
        raise bad_request("the frame is not a JSON object")
    kind, headers, data = message.get("type"), message.get("headers"), message.get("data")
    if kind not in _TYPES:
        raise bad_request(f"the frame's type is not one of {', '.join(_TYPES)}")
    if not isinstance(headers, dict):
        raise bad_request("the frame has no headers object")
    topic, message_id = headers.get("topic"), headers.get("messageId")
    if not isinstance(topic, str) or not topic:
        raise bad_request("the frame has no topic header")
    if not isinstance(message_id, str) or not message_id or len(message_id) > _MAX_ID:
        raise bad_request(f"the frame has no messageId header of at most {_MAX_ID} characters")
    if not isinstance(data, str):
        raise bad_request("the frame's data is not a string")
    decoded = jsonbody.loads(data, "the frame's data") if data else None
    return Frame(kind, topic, message_id, decoded, data, headers)


@dataclass(frozen=True)
class Ack:
    code: int  # 200, 400, 404 (no handler for the topic), 500 (§4)
    text: str  # as sent


def ack(message_id: str, code: int, data: Any, message: str = "OK") -> Ack:
    """The acknowledgement of frame `message_id` (§4): `data` goes as a JSON string."""
    text = jsontext.dumps(
        {
            "code": code,
            "headers": {"messageId": message_id, "contentType": "application/json"},
            "message": message,
            "data": data if isinstance(data, str) else jsontext.dumps(data),
        }
    )
    return Ack(code, text)


def callback_ack(message_id: str, response: Any = None) -> Ack:
    """A CALLBACK frame taken; for robot messages DingTalk ignores `response`."""
    return ack(message_id, 200, {"response": response})


def event_ack(message_id: str, taken: bool, why: str = "") -> Ack:
    """An EVENT frame: SUCCESS, or LATER (DingTalk sends it again) when it was not taken."""
    if taken:
        return ack(message_id, 200, {"status": "SUCCESS", "message": why or "OK"})
    return ack(message_id, 500, {"status": "LATER", "message": why}, "LATER")


def unknown_topic_ack(message_id: str) -> Ack:
    """A CALLBACK topic nothing here handles: 404, as the Go SDK answers."""
    return ack(message_id, 404, {"response": None}, "no handler for this topic")


def ping_reply(frame: Frame) -> Ack:
    """A SYSTEM ping is answered with its own data (§5)."""
    return ack(frame.message_id, 200, frame.raw_data)


def subscriptions(topics: Iterable[str], events: bool) -> list[dict[str, str]]:
    subs = [{"type": "EVENT", "topic": EVENT_TOPIC}] if events else []
    return subs + [{"type": "CALLBACK", "topic": t} for t in sorted(set(topics))]


def open_body(app_key: str, app_secret: str, subs: list[dict[str, str]]) -> dict[str, Any]:
    """The body of POST /v1.0/gateway/connections/open (§1)."""
    return {"clientId": app_key, "clientSecret": app_secret, "subscriptions": subs, "ua": UA}


def parse_open_answer(body: Any) -> tuple[str, str]:
    """The endpoint and ticket of connections/open's answer (raises InputError 400)."""
    if not isinstance(body, dict):
        raise bad_request("the answer of connections/open is not a JSON object")
    endpoint, ticket = body.get("endpoint"), body.get("ticket")
    if not isinstance(endpoint, str) or not endpoint.startswith(("wss://", "ws://")):
        raise bad_request("the answer of connections/open has no ws(s):// endpoint")
    if not isinstance(ticket, str) or not ticket:
        raise bad_request("the answer of connections/open has no ticket")
    return endpoint, ticket


def socket_url(endpoint: str, ticket: str) -> str:
    return f"{endpoint}{'&' if '?' in endpoint else '?'}ticket={quote_plus(ticket)}"


def open_refusal(status: int, body: Any) -> str:
    """What DingTalk said when connections/open failed, in words (no secret is in it: the
    answer never echoes the clientSecret)."""
    code = body.get("code") if isinstance(body, dict) else None
    text = body.get("message") if isinstance(body, dict) else None
    said = f" {code}" if isinstance(code, str) else ""
    said += f" ({text[:200]})" if isinstance(text, str) and text else ""
    if status in (401, 403):
        return (
            f"DingTalk refused the app's credentials: HTTP {status}{said}; "
            "check app_key and app_secret"
        )
    if status == 400:  # [uncertain] DingTalk may answer a wrong secret with a 400 too
        return f"DingTalk refused connections/open: HTTP 400{said}; check app_key and app_secret"
    return f"connections/open answered HTTP {status}{said}"


def backoff(attempt: int, jitter: float) -> float:
    """Seconds before connection attempt `attempt` (0 for the first retry): 1, 2, 4 ... capped
    at BACKOFF_CAP, plus up to 20 % (`jitter` in [0, 1)) so replicas do not retry in step."""
    base = min(BACKOFF_CAP, 2.0 ** min(attempt, 16))
    return min(BACKOFF_CAP, base * (1.0 + 0.2 * jitter))
