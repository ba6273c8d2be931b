"""Injected faults: "the next N requests to PATH get THIS instead of the normal answer".

They let the bridge's retry, backoff and token-refresh code be tested against the failure modes
the reference lists (§1.8): HTTP 5xx, errcode -1, 130101, timeouts, dropped connections and
non-JSON bodies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bridge.simulator.codes import DEFAULT_ERRMSGS

FaultKind = Literal["http_status", "errcode", "delay", "close", "non_json", "result_false"]
_KINDS: tuple[FaultKind, ...] = (
    "http_status",
    "errcode",
    "delay",
    "close",
    "non_json",
    # A v1.0 call taken and its change not made: HTTP 200 `{"success": true, "result": false}`,
    # the shape of a card update's answer (the card API's UpdateCardResponseBody, two booleans).
    "result_false",
)
# A delay is there to trip client timeouts; cap it so a typo cannot wedge a worker for hours.
MAX_DELAY_SECONDS = 300.0


class FaultError(ValueError):
    """A fault definition is malformed."""


@dataclass(frozen=True)
class FaultAction:
    kind: FaultKind
    http_status: int = 500
    errcode: int = 0
    errmsg: str = ""
    delay: float = 0.0

    def describe(self) -> str:
        if self.kind == "http_status":
            return f"http_status {self.http_status}"
        if self.kind == "errcode":
            return f"errcode {self.errcode}"
        if self.kind == "delay":
            return f"delay {self.delay:g}s"
        return self.kind

    def status_seen(self) -> int | None:
        """The HTTP status the client sees (None: no response at all)."""
        if self.kind == "http_status":
            return self.http_status
        return None if self.kind == "close" else 200

    def as_json(self) -> dict[str, Any]:
        if self.kind == "http_status":
            return {"http_status": self.http_status}
        if self.kind == "errcode":
            return {"errcode": self.errcode, "errmsg": self.errmsg}
        if self.kind == "delay":
            return {"delay": self.delay}
        return {self.kind: True}


@dataclass
class Fault:
    id: int
    path: str
    token: str | None
    remaining: int
    action: FaultAction

    def matches(self, path: str, identities: tuple[str, ...]) -> bool:
        """`identities`: the request's access_token / appkey / owning app_key, as known."""
        if self.remaining <= 0 or path != self.path:
            return False
        return self.token is None or self.token in identities

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "token": self.token,
            "remaining": self.remaining,
            "action": self.action.as_json(),
        }


class FaultQueue:
    """The faults registered and not used up, oldest first. Not thread-safe by itself."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._next_id = 1  # never reset, so fault ids stay unique across /_sim/reset

    def clear(self) -> None:
        self._faults = []

    def add(self, data: Any) -> Fault:
        """Register a fault from its JSON definition (raises FaultError)."""
        fault = parse_fault(data, self._next_id)
        self._next_id += 1
        self._faults.append(fault)
        return fault

    def take(self, path: str, identities: tuple[str, ...]) -> Fault | None:
        """Use up one time of the oldest fault that matches this request, if any."""
        fault = next((f for f in self._faults if f.matches(path, identities)), None)
        if fault is not None:
            fault.remaining -= 1
            self._faults = [f for f in self._faults if f.remaining > 0]
        return fault

    def as_json(self) -> list[dict[str, Any]]:
        return [f.as_json() for f in self._faults]


def parse_fault(data: Any, fault_id: int) -> Fault:
    """`{"path", "token"?, "count"?, "action": {...}}` → Fault."""
    if not isinstance(data, Mapping):
        raise FaultError("fault must be a JSON object")
    unknown = sorted(set(data) - {"path", "token", "count", "action"})
    if unknown:
        raise FaultError(f"unknown fault key(s): {', '.join(map(str, unknown))}")
    path = data.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise FaultError('fault "path" must be a path such as "/robot/send"')
    token = data.get("token")
    if token is not None and not isinstance(token, str):
        raise FaultError('fault "token" must be a string')
    count = data.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise FaultError('fault "count" must be an integer >= 1')
    return Fault(fault_id, path, token, count, parse_action(data.get("action")))


def parse_action(data: Any) -> FaultAction:
    if not isinstance(data, Mapping):
        raise FaultError('fault "action" must be a JSON object')
    kinds = [k for k in _KINDS if k in data]
    extra = sorted(set(data) - set(_KINDS) - {"errmsg"})
    if len(kinds) != 1 or extra or ("errmsg" in data and kinds != ["errcode"]):
        raise FaultError(
            'fault "action" must be exactly one of {"http_status": N}, {"errcode": N, "errmsg"?},'
            ' {"delay": seconds}, {"close": true}, {"non_json": true}'
        )
    kind = kinds[0]
    value = data[kind]
    if kind == "http_status":
        if not _is_int(value) or not 100 <= value <= 599:
            raise FaultError("http_status must be an integer HTTP status (100-599)")
        return FaultAction("http_status", http_status=value)
    if kind == "errcode":
        if not _is_int(value):
            raise FaultError("errcode must be an integer")
        errmsg = data.get("errmsg", DEFAULT_ERRMSGS.get(value, "simulated error"))
        if not isinstance(errmsg, str):
            raise FaultError("errmsg must be a string")
        return FaultAction("errcode", errcode=value, errmsg=errmsg)
    if kind == "delay":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise FaultError("delay must be a number of seconds")
        if not 0 <= value <= MAX_DELAY_SECONDS:
            raise FaultError(f"delay must be between 0 and {MAX_DELAY_SECONDS:g} seconds")
        return FaultAction("delay", delay=float(value))
    if value is not True:
        raise FaultError(f"{kind} must be true")
    return FaultAction(kind)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
