"""The simulated Stream gateway: tickets, connections, frames and their acks (Stream reference
§1-§7). The WebSocket server in streamserver.py moves bytes; everything DingTalk decides is here.

- `POST /v1.0/gateway/connections/open` checks clientId/clientSecret against the registered apps
  and hands out a ticket: single use, valid 90 s on the simulator's clock (`/_sim/clock` moves it).
- A frame goes to one open connection of its app that subscribed to its topic (EVENT: `*`); with
  none, it waits and goes out when one connects (DingTalk keeps retrying EVENT frames).
- An EVENT or CALLBACK frame not acknowledged within `redeliver_after` seconds (simulator clock),
  or acknowledged with `LATER`, is sent again; so is one whose connection ended before its ack.
  (For robot messages this is the reported, not the documented, behaviour: §7.)
- SYSTEM `ping` and `disconnect` go out on request; their answers are recorded with the acks.

Thread-safe: one lock; the functions that put bytes on a socket are called outside it.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.simulator.traffic import JSON, Reply

OPEN_PATH = "/v1.0/gateway/connections/open"
ROBOT_TOPIC = "/v1.0/im/bot/messages/get"
TICKET_TTL = 90.0  # documented: a ticket is good for 90 s and one connection (§1)
DEFAULT_REDELIVER_AFTER = 60.0  # [uncertain] DingTalk does not document the timeout (§7)
_HISTORY = 2_000  # frames and acks kept for GET /_sim/stream


class GatewayError(ValueError):
    """A control request the gateway cannot do (the WSGI layer answers 400)."""


@dataclass(frozen=True)
class Ticket:
    app_key: str
    subscriptions: frozenset[tuple[str, str]]  # (type, topic)
    expires: float


@dataclass
class _Connection:
    id: str
    app_key: str
    subscriptions: frozenset[tuple[str, str]]
    send: Callable[[str], None]
    close: Callable[[bool], None]  # True: drop the TCP connection, False: a clean close
    connected_at: float
    open: bool = True
    close_at: float | None = None  # after a `disconnect` frame: when the gateway closes it

    def takes(self, frame_type: str, topic: str) -> bool:
        return (frame_type, "*" if frame_type == "EVENT" else topic) in self.subscriptions


@dataclass
class _Frame:
    app_key: str
    message: dict[str, Any]  # the frame as sent
    due: float  # when it is (re)sent if not acknowledged
    attempts: int = 0
    connection: str | None = None

    @property
    def message_id(self) -> str:
        return str(self.message["headers"]["messageId"])


def _v1_error(status: int, code: str, message: str) -> Reply:
    """v1.0 errors: an HTTP 4xx with a JSON code and message (reference §2.2)."""
    return status, {"code": code, "message": message, "requestid": uuid.uuid4().hex}


def parse_subscriptions(raw: Any) -> frozenset[tuple[str, str]] | str:
    """The subscriptions of a connections/open body, or what is wrong with them."""
    if not isinstance(raw, list) or not raw:
        return "subscriptions must be a non-empty list"
    subs: set[tuple[str, str]] = set()
    for sub in raw:
        kind = sub.get("type") if isinstance(sub, dict) else None
        topic = sub.get("topic") if isinstance(sub, dict) else None
        if kind not in ("EVENT", "CALLBACK") or not isinstance(topic, str) or not topic:
            return 'each subscription is {"type": "EVENT"|"CALLBACK", "topic": "..."}'
        if kind == "EVENT" and topic != "*":
            return 'an EVENT subscription takes only the topic "*"'
        subs.add((kind, topic))
    return frozenset(subs)


class StreamGateway:
    """`app_secret(app_key)` is the registered app's secret (None: unknown app); `now` is the
    simulator's clock."""

    def __init__(
        self,
        app_secret: Callable[[str], str | None],
        redeliver_after: float = DEFAULT_REDELIVER_AFTER,
    ) -> None:
        self._app_secret = app_secret
        self.redeliver_after = redeliver_after
        self.endpoint = ""  # ws://host:port/connect, set once the WebSocket server listens
        self._lock = threading.Lock()
        self._live: dict[str, _Connection] = {}  # open connections
        # Told of every ack (messageId, code, data, now), outside the lock: a card click's
        # answer changes the card (cardboard.py).
        self.on_ack: Callable[[str, int, Any, float], None] = lambda *ack: None
        self.reset()

    def reset(self) -> None:
        """Forget tickets, frames and acks; drop every connection."""
        with self._lock:
            self._tickets: dict[str, Ticket] = {}
            self._connections: dict[str, _Connection] = {}  # every one since the reset
            self._frames: dict[str, _Frame] = {}  # not acknowledged yet, by messageId
            self._sent: list[JSON] = []
            self._acks: list[JSON] = []
            self._opens: list[JSON] = []
            live, self._live = list(self._live.values()), {}
        for conn in live:
            conn.close(True)

    # --- connections/open and the handshake ------------------------------------------------------

    def open_connection(self, now: float, body: Any) -> Reply:
        if not isinstance(body, dict):
            return _v1_error(400, "MissingParameter", "the body must be a JSON object")
        client_id, client_secret = body.get("clientId"), body.get("clientSecret")
        if not isinstance(client_id, str) or not client_id:
            return _v1_error(400, "MissingclientId", "clientId is required")
        if not isinstance(client_secret, str) or not client_secret:
            return _v1_error(400, "MissingclientSecret", "clientSecret is required")
        subs = parse_subscriptions(body.get("subscriptions"))
        if isinstance(subs, str):
            return _v1_error(400, "InvalidParameter.subscriptions", subs)
        known = self._app_secret(client_id)
        with self._lock:
            self._opens.append({"at": now, "client_id": client_id, "ok": known == client_secret})
            if known is None or not secrets.compare_digest(known, client_secret):
                # [uncertain] the real code and status of refused credentials (docs/dingtalk-v1.md)
                return _v1_error(401, "InvalidAuthentication", "clientId or clientSecret is wrong")
            ticket = str(uuid.uuid4())
            self._tickets[ticket] = Ticket(client_id, subs, now + TICKET_TTL)
        return 200, {"endpoint": self.endpoint, "ticket": ticket}

    def take_ticket(self, now: float, ticket: str) -> Ticket | None:
        """The ticket's grant, once: a second use or an expired ticket gets None."""
        with self._lock:
            grant = self._tickets.pop(ticket, None)
        return grant if grant is not None and now < grant.expires else None

    def connected(
        self,
        now: float,
        grant: Ticket,
        send: Callable[[str], None],
        close: Callable[[bool], None],
    ) -> str:
        conn = _Connection(uuid.uuid4().hex, grant.app_key, grant.subscriptions, send, close, now)
        with self._lock:
            self._connections[conn.id] = conn
            self._live[conn.id] = conn
        self.tick(now)  # what waited for a connection goes out now
        return conn.id

    def disconnected(self, now: float, conn_id: str) -> None:
        """Frames sent on it without an ack go out again on another connection."""
        with self._lock:
            conn = self._live.pop(conn_id, None)
            if conn is not None:
                conn.open = False
            for frame in self._frames.values():
                if frame.connection == conn_id:
                    frame.connection, frame.due = None, now
        self.tick(now)

    # --- frames out ------------------------------------------------------------------------------

    def push(
        self, now: float, app_key: str, frame_type: str, topic: str, data: Any, message_id: str = ""
    ) -> JSON:
        """Queue an EVENT or CALLBACK frame for `app_key` (sent at once when it is connected).
        The same `message_id` again stands for DingTalk sending a frame again after its ack."""
        if frame_type not in ("EVENT", "CALLBACK"):
            raise GatewayError('type must be "EVENT" or "CALLBACK"')
        if self._app_secret(app_key) is None:
            raise GatewayError(f"unknown app {app_key!r}")
        message_id = message_id or uuid.uuid4().hex
        headers: dict[str, str] = {
            "appId": app_key,
            "contentType": "application/json",
            "messageId": message_id,
            "time": str(int(now * 1000)),
            "topic": topic,
        }
        if frame_type == "EVENT":
            event_type = data.get("EventType") if isinstance(data, dict) else None
            headers |= {
                "eventId": uuid.uuid4().hex,
                "eventBornTime": str(int(now * 1000)),
                "eventCorpId": "dingsimulatedcorp",
                "eventType": str(event_type or "unknown"),
                "eventUnifiedAppId": app_key,
            }
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        message = {"specVersion": "1.0", "type": frame_type, "headers": headers, "data": text}
        with self._lock:
            self._frames[message_id] = _Frame(app_key, message, due=now)
        self.tick(now)
        return {"message_id": message_id, "topic": topic, "type": frame_type}

    def system(
        self, now: float, app_key: str, topic: str, drop: bool = False, close_after: float = 10.0
    ) -> JSON:
        """A SYSTEM `ping` or `disconnect` frame to every open connection of `app_key` (or,
        with `drop`, the TCP connections dropped without a word). After `disconnect` the
        gateway closes the connection `close_after` seconds later (about 10 s: §5) if the
        client has not."""
        with self._lock:
            conns = [c for c in self._live.values() if c.app_key == app_key or not app_key]
        message_ids = []
        for conn in conns:
            if drop:
                conn.close(True)
                continue
            data = {"opaque": uuid.uuid4().hex} if topic == "ping" else {"reason": "simulated"}
            message = _system_frame(topic, data, now)
            message_ids.append(message["headers"]["messageId"])
            if topic == "disconnect":
                conn.close_at = now + close_after
            self._send(now, conn, message, attempt=1)
        return {"connections": len(conns), "message_ids": message_ids}

    def tick(self, now: float) -> None:
        """Send every frame that is due: new ones, and unacknowledged ones past their time."""
        sends: list[tuple[_Connection, dict[str, Any], int]] = []
        with self._lock:
            closing = [
                c for c in self._live.values() if c.close_at is not None and c.close_at <= now
            ]
            for frame in self._frames.values():
                if frame.due > now:
                    continue
                headers = frame.message["headers"]
                conn = next(
                    (
                        c
                        for c in self._live.values()
                        if c.app_key == frame.app_key
                        and c.close_at is None
                        and c.takes(frame.message["type"], headers["topic"])
                    ),
                    None,
                )
                if conn is None:
                    frame.connection = None
                    continue  # waits for a connection
                frame.attempts += 1
                frame.connection, frame.due = conn.id, now + self.redeliver_after
                sends.append(
                    (
                        conn,
                        {**frame.message, "headers": {**headers, "connectionId": conn.id}},
                        frame.attempts,
                    )
                )
        for conn, message, attempt in sends:
            self._send(now, conn, message, attempt)
        for conn in closing:
            conn.close_at = None
            conn.close(False)

    def _send(self, now: float, conn: _Connection, message: dict[str, Any], attempt: int) -> None:
        headers = message["headers"]
        with self._lock:
            self._sent.append(
                {
                    "at": now,
                    "connection": conn.id,
                    "app_key": conn.app_key,
                    "type": message["type"],
                    "topic": headers["topic"],
                    "message_id": headers["messageId"],
                    "attempt": attempt,
                }
            )
            del self._sent[:-_HISTORY]
        with contextlib.suppress(Exception):
            conn.send(json.dumps(message, ensure_ascii=False))

    # --- frames in -------------------------------------------------------------------------------

    def received(self, now: float, conn_id: str, text: str | bytes) -> None:
        """An ack (or anything else a client sends: recorded as `invalid`)."""
        record: JSON = {"at": now, "connection": conn_id}
        try:
            ack = json.loads(text)
            headers = ack["headers"]
            message_id, code = str(headers["messageId"]), int(ack["code"])
            data = ack.get("data")
        except (ValueError, KeyError, TypeError, RecursionError):
            with self._lock:
                self._acks.append({**record, "invalid": str(text)[:200]})
            return
        status = _event_status(data)
        record |= {"message_id": message_id, "code": code, "data": data, "status": status}
        with self._lock:
            self._acks.append(record)
            del self._acks[:-_HISTORY]
            frame = self._frames.get(message_id)
            if frame is not None:
                failed = code != 200 or (frame.message["type"] == "EVENT" and status != "SUCCESS")
                if failed:
                    frame.due = now + self.redeliver_after  # LATER: DingTalk sends it again
                else:
                    del self._frames[message_id]
        self.on_ack(message_id, code, data, now)

    # --- control -----------------------------------------------------------------------------

    def snapshot(self) -> JSON:
        with self._lock:
            return {
                "endpoint": self.endpoint,
                "redeliver_after": self.redeliver_after,
                "opens": list(self._opens),
                "connections": [
                    {
                        "id": c.id,
                        "app_key": c.app_key,
                        "open": c.open,
                        "connected_at": c.connected_at,
                        "subscriptions": sorted(f"{t} {topic}" for t, topic in c.subscriptions),
                    }
                    for c in self._connections.values()
                ],
                "frames": list(self._sent),
                "acks": list(self._acks),
                "unacknowledged": sorted(self._frames),
            }


def _system_frame(topic: str, data: dict[str, str], now: float) -> dict[str, Any]:
    return {
        "specVersion": "1.0",
        "type": "SYSTEM",
        "headers": {
            "contentType": "application/json",
            "messageId": uuid.uuid4().hex,
            "time": str(int(now * 1000)),
            "topic": topic,
        },
        "data": json.dumps(data),
    }


def _event_status(data: Any) -> str | None:
    """The `status` of an EVENT ack's data (SUCCESS or LATER), if it has one."""
    try:
        decoded = json.loads(data) if isinstance(data, str) else data
    except (ValueError, RecursionError):
        return None
    status = decoded.get("status") if isinstance(decoded, dict) else None
    return status if isinstance(status, str) else None


def robot_message(app_key: str, text: str, fields: dict[str, Any], now: float) -> JSON:
    """A robot message's `data` as DingTalk sends it (§9), `fields` overriding."""
    return {
        "msgId": f"msg{uuid.uuid4().hex[:20]}",
        "createAt": int(now * 1000),
        "msgtype": "text",
        "text": {"content": f" {text}"},
        "conversationId": "cidsimulated",
        "conversationType": "2",
        "conversationTitle": "simulated group",
        "senderId": "$:LWCP_v1:$simulated",
        "senderNick": "Simulated",
        "senderCorpId": "dingsimulatedcorp",
        "chatbotUserId": "$:LWCP_v1:$robot",
        "chatbotCorpId": "dingsimulatedcorp",
        "robotCode": app_key,
        "isAdmin": False,
        "isInAtList": True,
        "sessionWebhookExpiredTime": int((now + 5400) * 1000),
        **fields,
    }
