"""The control API of the simulated Stream gateway, for tests and demos:

- `GET /_sim/stream`: connections, frames sent (with their attempt), acks received (code, data,
  status), opens tried, frames not acknowledged yet.
- `POST /_sim/stream {"redeliver_after": s}`: when an unacknowledged frame goes out again.
- `POST /_sim/stream/push {"app_key": K, "robot": {"text": "help", <fields>}}`: a robot message;
  `{"app_key": K, "event": {"EventType": ...}}`: an event; `{"app_key": K, "callback":
  {"topic": T, "data": {...}}}`: any CALLBACK frame (card clicks). `"message_id"` reuses an id
  (DingTalk sending a frame again after its ack).
- `POST /_sim/stream/ping {"app_key": K}`: a SYSTEM ping to each of its connections.
- `POST /_sim/stream/disconnect {"app_key": K, "drop": false, "close_after": 10}`: a SYSTEM
  disconnect frame (the connection is closed `close_after` seconds later), or with `drop` the TCP
  connections dropped at once.
"""

from __future__ import annotations

from typing import Any

from bridge.simulator.stream import ROBOT_TOPIC, GatewayError, StreamGateway, robot_message
from bridge.simulator.traffic import Reply

PREFIX = "/_sim/stream"


def _number(body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise GatewayError(f"{key} must be a number of seconds >= 0")
    return float(value)


def control(gateway: StreamGateway, method: str, path: str, body: Any, now: float) -> Reply:
    """Raises GatewayError (a 400) for a request it cannot do; KeyError for no such route."""
    if path == PREFIX and method == "GET":
        return 200, gateway.snapshot()
    if not isinstance(body, dict):
        raise GatewayError("the body must be a JSON object")
    app_key = body.get("app_key", "")
    if not isinstance(app_key, str):
        raise GatewayError("app_key must be a string")
    if path == PREFIX and method == "POST":
        gateway.redeliver_after = _number(body, "redeliver_after", gateway.redeliver_after)
        return 200, {"redeliver_after": gateway.redeliver_after}
    if path == f"{PREFIX}/push" and method == "POST":
        return 200, _push(gateway, app_key, body, now)
    if path == f"{PREFIX}/ping" and method == "POST":
        return 200, gateway.system(now, app_key, "ping")
    if path == f"{PREFIX}/disconnect" and method == "POST":
        drop = body.get("drop") is True
        close_after = _number(body, "close_after", 10.0)
        return 200, gateway.system(now, app_key, "disconnect", drop, close_after)
    raise KeyError(path)


def _push(gateway: StreamGateway, app_key: str, body: dict[str, Any], now: float) -> Any:
    message_id = body.get("message_id", "")
    if not isinstance(message_id, str):
        raise GatewayError("message_id must be a string")
    robot, event, callback = body.get("robot"), body.get("event"), body.get("callback")
    if isinstance(robot, dict):
        fields = {k: v for k, v in robot.items() if k != "text"}
        data = robot_message(app_key, str(robot.get("text", "")), fields, now)
        return gateway.push(now, app_key, "CALLBACK", ROBOT_TOPIC, data, message_id)
    if isinstance(event, dict):
        return gateway.push(now, app_key, "EVENT", "*", event, message_id)
    if isinstance(callback, dict) and isinstance(callback.get("topic"), str):
        data = callback.get("data", {})
        return gateway.push(now, app_key, "CALLBACK", callback["topic"], data, message_id)
    raise GatewayError(
        'expected {"app_key": K} with "robot": {...}, "event": {...} or'
        ' "callback": {"topic": "...", "data": ...}'
    )
