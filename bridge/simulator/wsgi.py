"""The HTTP face of the simulator: a WSGI app translating requests into `SimulatorState` calls.

It owns the only impure bits: reading the clock, sleeping for delay faults and dropping the
connection for close faults. Query strings are decoded exactly once (urllib's normal parsing,
`+` → space included), which is what makes a double-encoded `sign` fail as it does on DingTalk.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl

from waitress.channel import ClientDisconnected

from bridge.simulator.callbacks import CALLBACK_PATHS, Callbacks
from bridge.simulator.cardboard import CARD_TOPIC, Clicks, click_data, instances
from bridge.simulator.checks import Rejected
from bridge.simulator.faults import FaultAction, FaultError
from bridge.simulator.openapi import V1_PATHS
from bridge.simulator.page import render_page
from bridge.simulator.spec import SpecError, parse_apps, parse_robots
from bridge.simulator.state import SimulatorState
from bridge.simulator.stream import OPEN_PATH, GatewayError, StreamGateway
from bridge.simulator.streamcontrol import PREFIX as STREAM_PREFIX
from bridge.simulator.streamcontrol import control as stream_control
from bridge.simulator.traffic import (
    API_PATHS,
    ASYNCSEND_PATH,
    GETSENDRESULT_PATH,
    GETTOKEN_PATH,
    ROBOT_SEND_PATH,
    SESSION_PATH,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

JSON_TYPE = "application/json; charset=utf-8"
_EXPIRE_PATH = re.compile(r"/_sim/apps/(?P<app_key>[^/]+)/expire-tokens")
# What a reverse proxy in front of an API typically answers with: HTML, not JSON.
_NON_JSON_BODY = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class _ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Response = tuple[int, str, bytes]  # status, content type, body
T = TypeVar("T")


class SimulatorApp:
    """WSGI application. `clock` and `sleep` are injectable; `POST /_sim/clock {"advance": s}`
    moves the simulator's clock forward (e.g. past a 600 s lockout or a token's expiry)."""

    def __init__(
        self,
        state: SimulatorState,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.state = state
        self._clock = clock
        self._sleep = sleep
        self._offset = 0.0
        self._offset_lock = threading.Lock()
        self.callbacks = Callbacks(_post)
        self.stream = StreamGateway(lambda key: app.app_secret if (app := state.app(key)) else None)
        self.clicks = Clicks(state.card_answered)
        self.stream.on_ack = self.clicks.acked

    def now(self) -> float:
        with self._offset_lock:
            return self._clock() + self._offset

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        query = parse_query(environ.get("QUERY_STRING", ""))
        try:
            if path in API_PATHS:
                status, content_type, body = self._api(method, path, query, environ)
            elif path in V1_PATHS:
                status, content_type, body = self._v1_api(method, path, query, environ)
            elif path == OPEN_PATH:
                status, content_type, body = self._stream_open(method, environ)
            elif path in CALLBACK_PATHS:
                status, content_type, body = self._callback_api(method, path, query, environ)
            else:
                status, content_type, body = self._control(method, path, query, environ)
        except _ControlError as exc:
            status, content_type, body = _json(exc.status, {"error": str(exc)})
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if path == "/":
            headers.append(("Cache-Control", "no-store"))
        start_response(f"{status} {_REASONS.get(status, 'Status')}", headers)
        return [body]

    # --- DingTalk API ----------------------------------------------------------------------------

    def _api(
        self, method: str, path: str, query: dict[str, str], environ: WSGIEnvironment
    ) -> Response:
        # Read the body first: waitress has it buffered anyway, and a fault must not leave it
        # half-read on a keep-alive connection.
        body = _read_body(environ)
        faulted = self._faulted(path, query)
        if faulted is not None:
            return faulted
        expected = "GET" if path == GETTOKEN_PATH else "POST"
        if method != expected:
            return _json(405, {"errcode": 405, "errmsg": f"use {expected} for {path}"})
        now = self.now()
        if path == ROBOT_SEND_PATH:
            return _json(*self.state.robot_send(now, query, body))
        if path == GETTOKEN_PATH:
            return _json(*self.state.gettoken(now, query))
        if path == ASYNCSEND_PATH:
            return _json(*self.state.asyncsend(now, query, body))
        if path == SESSION_PATH:
            return _json(*self.state.session_send(now, query, body))
        assert path == GETSENDRESULT_PATH
        return _json(*self.state.getsendresult(now, query, body))

    def _v1_api(
        self, method: str, path: str, query: dict[str, str], environ: WSGIEnvironment
    ) -> Response:
        """The v1.0 API (simulator/openapi.py): the token comes in a header, not the query."""
        body = _read_body(environ)
        faulted = self._faulted(path, query)
        if faulted is not None:
            return faulted
        token = str(environ.get("HTTP_X_ACS_DINGTALK_ACCESS_TOKEN", ""))
        return _json(*self.state.openapi(self.now(), method, path, token, body))

    def _callback_api(
        self, method: str, path: str, query: dict[str, str], environ: WSGIEnvironment
    ) -> Response:
        expected = "POST" if path.endswith(("/register_call_back", "/update_call_back")) else "GET"
        if method != expected:
            return _json(405, {"errcode": 405, "errmsg": f"use {expected} for {path}"})
        try:
            app_key, app = self.state.authenticated_app(self.now(), query)
        except Rejected as rejected:
            return _json(200, {"errcode": rejected.errcode, "errmsg": rejected.errmsg})
        body = _read_json(environ) if expected == "POST" else {}
        if not isinstance(body, dict):
            return _json(200, {"errcode": 40035, "errmsg": "the body must be a JSON object"})
        return _json(*self.callbacks.api(path, app_key, app.corp_id, body, self.now()))

    def _faulted(self, path: str, query: dict[str, str]) -> Response | None:
        """The response of a fault injected for this request, or None to handle it normally
        (none matched, or a delay that has passed)."""
        fault = self.state.take_fault(self.now(), path, query)
        return self._apply_fault(fault) if fault is not None else None

    def _click(self, data: Any) -> dict[str, Any]:
        """POST /_sim/cards/click: someone taps a button of a card (cardboard.py)."""
        fields = ("outTrackId", "userId", "action")
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in fields):
            raise _ControlError(400, 'expected {"outTrackId": ..., "userId": ..., "action": ...}')
        message_id = data.get("message_id", "")
        if not isinstance(message_id, str):
            raise _ControlError(400, "message_id must be a string")
        card = next(
            (c for c in instances(self.state.cards()) if c["outTrackId"] == data["outTrackId"]),
            None,
        )
        if card is None:
            raise _ControlError(404, f"no card {data['outTrackId']}")
        frame = click_data(card, data["userId"], data["action"])
        try:
            pushed = self.stream.push(
                self.now(), str(card["app_key"]), "CALLBACK", CARD_TOPIC, frame, message_id
            )
        except GatewayError as exc:
            raise _ControlError(400, str(exc)) from exc
        self.clicks.pushed(pushed["message_id"], card["outTrackId"])
        return pushed

    def _stream_open(self, method: str, environ: WSGIEnvironment) -> Response:
        """POST /v1.0/gateway/connections/open (Stream mode, stream.py)."""
        if method != "POST":
            return _json(405, {"code": "MethodNotAllowed", "message": f"use POST for {OPEN_PATH}"})
        try:
            body = json.loads(_read_body(environ) or b"null")
        except (ValueError, RecursionError):
            body = None
        return _json(*self.stream.open_connection(self.now(), body))

    def _apply_fault(self, fault: FaultAction) -> Response | None:
        """The faulted response, or None to go on with normal handling (after a delay)."""
        if fault.kind == "delay":
            self._sleep(fault.delay)
            return None
        if fault.kind == "close":
            # Raised before any byte of the response is written: waitress treats
            # ClientDisconnected as "the peer went away" and closes the socket without answering,
            # which is exactly the fault (the client sees a dropped connection). Under another
            # WSGI server this would become a 500 instead.
            raise ClientDisconnected("simulated connection drop")
        if fault.kind == "non_json":
            return 200, "text/html; charset=utf-8", _NON_JSON_BODY
        if fault.kind == "result_false":
            return _json(200, {"success": True, "result": False})
        if fault.kind == "http_status":
            reason = _REASONS.get(fault.http_status, "Error")
            page = f"<html><body><h1>{fault.http_status} {reason}</h1></body></html>"
            return fault.http_status, "text/html; charset=utf-8", page.encode()
        return _json(200, {"errcode": fault.errcode, "errmsg": fault.errmsg})

    # --- control API -----------------------------------------------------------------------------

    def _control(
        self, method: str, path: str, query: dict[str, str], environ: WSGIEnvironment
    ) -> Response:
        state = self.state
        if path == "/" and method in ("GET", "HEAD"):
            page = render_page(state.messages(), state.requests(), self.now(), state.cards())
            return 200, "text/html; charset=utf-8", page.encode()
        if path == "/_sim/health" and method == "GET":
            return _json(200, {"ok": True})
        if path == "/_sim/messages" and method == "GET":
            since = _int_param(query, "since")
            messages = state.messages(since, query.get("token"))
            return _json(200, {"messages": messages})
        if path == "/_sim/requests" and method == "GET":
            return _json(200, {"requests": state.requests(_int_param(query, "since"))})
        if path == "/_sim/cards" and method == "GET":
            calls = state.cards()
            since = max(_int_param(query, "since"), 0)
            return _json(200, {"cards": calls[since:], "instances": instances(calls)})
        if path == "/_sim/cards/click" and method == "POST":
            return _json(200, self._click(_read_json(environ)))
        if path == "/_sim/stats" and method == "GET":
            return _json(200, state.stats())
        if path == "/_sim/callbacks/push" and method == "POST":
            data = _read_json(environ)
            app_key = str(data.get("app_key")) if isinstance(data, dict) else ""
            app = state.app(app_key)
            if app is None or not isinstance(data.get("event"), dict):
                raise _ControlError(400, 'expected {"app_key": <a known app>, "event": {...}}')
            try:
                pushed = self.callbacks.push(app_key, app.corp_id, data["event"], self.now())
            except KeyError:
                raise _ControlError(404, f"app {app_key} has no callback registered") from None
            return _json(200, pushed)
        if path.startswith(STREAM_PREFIX):
            try:
                data = _read_json(environ) if method == "POST" else {}
                return _json(*stream_control(self.stream, method, path, data, self.now()))
            except GatewayError as exc:
                raise _ControlError(400, str(exc)) from exc
            except KeyError:
                raise _ControlError(404, f"no route {method} {path}") from None
        if path == "/_sim/reset" and method == "POST":
            self.clicks.reset()
            self.stream.reset()
            self.callbacks.reset()
            state.reset()
            with self._offset_lock:
                self._offset = 0.0
            return _json(200, {"ok": True})
        if path == "/_sim/robots":
            if method == "POST":
                state.register_robots(_spec(parse_robots, _read_json(environ)))
            return _json(200, {"robots": state.robots()})
        if path == "/_sim/apps":
            if method == "POST":
                state.register_apps(_spec(parse_apps, _read_json(environ)))
            return _json(200, {"apps": state.apps()})
        expire = _EXPIRE_PATH.fullmatch(path)
        if expire and method == "POST":
            try:
                expired = state.expire_tokens(self.now(), expire["app_key"])
            except KeyError:
                raise _ControlError(404, f"unknown app {expire['app_key']}") from None
            return _json(200, {"expired": expired})
        if path == "/_sim/faults":
            if method == "POST":
                try:
                    fault = state.add_fault(_read_json(environ))
                except FaultError as exc:
                    raise _ControlError(400, str(exc)) from exc
                return _json(200, fault.as_json())
            return _json(200, {"faults": state.faults()})
        if path == "/_sim/clock":
            if method == "POST":
                self._advance(_read_json(environ))
            with self._offset_lock:
                offset = self._offset
            return _json(200, {"now": self.now(), "offset": offset})
        raise _ControlError(404 if method in ("GET", "POST") else 405, f"no route {method} {path}")

    def _advance(self, data: Any) -> None:
        advance = data.get("advance") if isinstance(data, dict) else None
        if not isinstance(advance, int | float) or isinstance(advance, bool) or advance < 0:
            raise _ControlError(400, 'expected {"advance": seconds >= 0}')
        with self._offset_lock:
            self._offset += float(advance)


def parse_query(query_string: str) -> dict[str, str]:
    """Decode a query string exactly once; the first occurrence of a repeated name wins."""
    pairs = parse_qsl(query_string, keep_blank_values=True)
    return dict(reversed(pairs))


def _read_body(environ: WSGIEnvironment) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return b""
    data: bytes = environ["wsgi.input"].read(length)
    return data


def _read_json(environ: WSGIEnvironment) -> Any:
    try:
        return json.loads(_read_body(environ) or b"{}")
    except ValueError as exc:
        raise _ControlError(400, f"body is not JSON: {exc}") from exc


def _spec(parse: Callable[[Any], T], data: Any) -> T:
    try:
        return parse(data)
    except SpecError as exc:
        raise _ControlError(400, str(exc)) from exc


def _int_param(query: dict[str, str], name: str) -> int:
    value = query.get(name, "0") or "0"
    try:
        return int(value)
    except ValueError:
        raise _ControlError(400, f"{name} must be an integer") from None


def _json(status: int, body: dict[str, Any]) -> Response:
    # ensure_ascii=False: DingTalk answers with literal UTF-8 (e.g. "access_token超时").
    return status, JSON_TYPE, json.dumps(body, ensure_ascii=False).encode("utf-8")


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    """DingTalk calling a registered callback URL: 1,500 ms to answer (reference §4.2)."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=1.5) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
