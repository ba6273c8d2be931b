"""The WSGI application behind every HTTP input: routing, auth, size limits, JSON, errors.

It knows nothing about DingTalk. For a request to an input's path it checks method, token and
size (before reading anything else), parses the JSON within limits (bridge/inputs/jsonbody.py),
asks the input's parser for Events and hands them to `Intake.accept`, whose answer (how many
messages were queued) becomes the response. Every client mistake gets a 4xx with a JSON body
saying what is wrong; an unexpected exception is logged and answered 500, and the server keeps
serving. Signed DingTalk requests are single-use: the intake remembers each in the store
(`SignedOnce`), in the same commit as what it caused.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any, Protocol

from bridge.config.model import CallbackInput, ChatInput, HttpInput, RoutedInput
from bridge.errors import InputError, Reason
from bridge.inputs import jsonbody
from bridge.inputs.alertmanager import parse_notification
from bridge.inputs.callback import CHECK_URL, callback_event, open_callback, success_reply
from bridge.inputs.chat import ChatMessage, once, parse_message, verify
from bridge.inputs.signed import SignedOnce
from bridge.inputs.webhook import parse_webhook
from bridge.logs import fmt_fields
from bridge.model import Accepted, Event

log = logging.getLogger("bridge.http")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Parser = Callable[[Any, HttpInput, datetime], list[Event]]
PARSERS: Mapping[str, Parser] = {"alertmanager": parse_notification, "webhook": parse_webhook}

_STATUS_TEXT = {
    200: "OK",
    400: "Bad Request",
    422: "Unprocessable Content",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Intake(Protocol):
    """What the HTTP layer needs from the running bridge."""

    def routes(self) -> Mapping[str, RoutedInput]: ...

    def accept(self, spec: RoutedInput, events: list[Event]) -> Accepted: ...

    def accept_once(
        self, spec: RoutedInput, events: list[Event], request: SignedOnce
    ) -> Accepted | None:
        """`accept`, remembering `request` in the same commit: None when this very request was
        taken before (nothing is done again), InputError 409 when its key came with another
        body."""
        ...

    def claim(self, request: SignedOnce) -> None:
        """Remember `request` now; InputError 409 if its key was used before."""
        ...

    def readiness(self) -> tuple[bool, dict[str, Any]]: ...

    def reject(self, input_name: str, reason: Reason) -> None: ...

    def reload_over_http(self, authorization: str) -> tuple[int, dict[str, Any]]: ...

    def command(self, spec: ChatInput, message: ChatMessage) -> dict[str, Any]: ...

    def metrics(self) -> bytes: ...


_date_header: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The Date header, formatted once a second (like nginx): waitress would format it for each
    response, 3% of an accepted request."""
    global _date_header
    second = int(time.time())
    if _date_header[0] != second:
        _date_header = (second, formatdate(second, usegmt=True))  # one assignment: thread-safe
    return _date_header[1]


def _json(
    start: StartResponse,
    status: int,
    body: Mapping[str, Any],
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
    start(
        f"{status} {_STATUS_TEXT.get(status, '')}".rstrip(),
        [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Length", str(len(payload))),
            ("Date", _http_date()),
            *headers,
        ],
    )
    return [payload]


def _error(start: StartResponse, error: InputError) -> list[bytes]:
    headers: list[tuple[str, str]] = []
    if error.status == 401:
        headers.append(("WWW-Authenticate", 'Bearer realm="dingtalk-bridge"'))
    if error.status == 405:
        headers.append(("Allow", "POST"))
    if error.status == 503:
        headers.append(("Retry-After", "10"))
    return _json(
        start,
        error.status,
        {"status": "error", "reason": error.reason.value, "error": str(error)},
        headers,
    )


class HttpApp:
    def __init__(self, intake: Intake, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.intake = intake
        self.clock = clock

    def __call__(self, environ: dict[str, Any], start: StartResponse) -> list[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if path.startswith("/-/") or path == "/metrics":
                return self._builtin(path, method, environ, start)
            return self._input(path, method, environ, start)
        except InputError as exc:
            return _error(start, exc)
        except Exception:
            log.exception(fmt_fields("request failed", path=path))
            return _json(
                start,
                500,
                {
                    "status": "error",
                    "reason": "internal",
                    "error": "internal error; see the bridge's log",
                },
            )

    def _builtin(
        self, path: str, method: str, environ: dict[str, Any], start: StartResponse
    ) -> list[bytes]:
        if path not in ("/-/healthy", "/-/ready", "/-/reload", "/metrics"):
            raise InputError(404, Reason.NOT_FOUND, f"no endpoint at {path}")
        if path == "/-/reload":
            if method != "POST":
                raise InputError(405, Reason.METHOD_NOT_ALLOWED, f"{path} accepts POST")
            status, body = self.intake.reload_over_http(environ.get("HTTP_AUTHORIZATION", ""))
            return _json(start, status, body)
        if method not in ("GET", "HEAD"):
            start("405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Length", "0")])
            return [b""]
        if path == "/-/healthy":
            return _json(start, 200, {"status": "healthy"})
        if path == "/metrics":
            payload = self.intake.metrics()
            start(
                "200 OK",
                [
                    ("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
                    ("Content-Length", str(len(payload))),
                ],
            )
            return [payload]
        ready, details = self.intake.readiness()
        return _json(
            start, 200 if ready else 503, {"status": "ready" if ready else "not ready", **details}
        )

    def _input(
        self, path: str, method: str, environ: dict[str, Any], start: StartResponse
    ) -> list[bytes]:
        spec = self.intake.routes().get(path)
        if spec is None:
            raise InputError(404, Reason.NOT_FOUND, f"no input listens on {path}")
        try:
            if method != "POST":
                raise InputError(
                    405, Reason.METHOD_NOT_ALLOWED, f"{path} accepts POST, not {method}"
                )
            if isinstance(spec, CallbackInput):
                return self._callback(spec, environ, start)
            if isinstance(spec, ChatInput):
                return self._chat(spec, environ, start)
            self._authorize(spec, environ)
            raw = self._read_body(spec, environ)
            events = PARSERS[spec.type](jsonbody.loads(raw), spec, self.clock())
            accepted = self.intake.accept(
                spec, events
            )  # 503 when a queue is full or the store busy
        except InputError as exc:
            self._rejected(spec, exc)
            raise
        # vars(), not asdict(): a flat record of ints, and asdict's deep copy cost 5% of a request.
        return _json(start, 200, {"status": "accepted", "events": len(events), **vars(accepted)})

    def _rejected(self, spec: RoutedInput, exc: InputError) -> None:
        self.intake.reject(spec.name, exc.reason)
        log.info(
            fmt_fields(
                "request rejected",
                input=spec.name,
                status=exc.status,
                reason=exc.reason.value,
                error=str(exc),
            )
        )

    def _chat(self, spec: ChatInput, environ: dict[str, Any], start: StartResponse) -> list[bytes]:
        """A command from the chat: the sign first, then the body, then its single use."""
        timestamp = environ.get("HTTP_TIMESTAMP", "")
        sign = environ.get("HTTP_SIGN", "")
        sent = verify(spec, timestamp, sign, self.clock())
        raw = self._read_body(spec, environ)
        message = parse_message(spec, jsonbody.loads(raw))
        self.intake.claim(once(spec, timestamp, sign, sent, raw))  # 409 on a second use
        return _json(start, 200, self.intake.command(spec, message))

    def _callback(
        self, spec: CallbackInput, environ: dict[str, Any], start: StartResponse
    ) -> list[bytes]:
        """A DingTalk event callback: verified and opened, routed (unless it is the check_url
        handshake), then answered with the encrypted `success`. The very same callback again
        (DingTalk's answer was lost) is answered `success` again and not routed twice."""
        now = self.clock()
        raw = self._read_body(spec, environ)
        data, request = open_callback(spec, environ.get("QUERY_STRING", ""), raw, now)
        event_type = str(data["EventType"])
        routed = [] if event_type == CHECK_URL else [callback_event(spec, data, now)]
        accepted = self.intake.accept_once(spec, routed, request)  # may 503 or 409
        if accepted is None:
            log.info(fmt_fields("callback taken before, answered again", input=spec.name))
        elif not routed:
            log.info(fmt_fields("callback URL checked", input=spec.name))
        else:
            log.info(
                fmt_fields(
                    "callback accepted",
                    input=spec.name,
                    event_type=event_type,
                    messages=accepted.messages,
                )
            )
        return _json(start, 200, success_reply(spec, now))

    @staticmethod
    def _authorize(spec: HttpInput, environ: dict[str, Any]) -> None:
        if spec.token is None:
            return
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise InputError(
                401, Reason.UNAUTHORIZED, "missing bearer token (Authorization: Bearer …)"
            )
        if not hmac.compare_digest(given.strip().encode(), spec.token.encode()):
            raise InputError(401, Reason.UNAUTHORIZED, "wrong bearer token")

    @staticmethod
    def _read_body(spec: RoutedInput, environ: dict[str, Any]) -> bytes:
        limit = spec.max_body_bytes
        too_large = InputError(413, Reason.TOO_LARGE, f"the body is larger than {limit} bytes")
        length_text = environ.get("CONTENT_LENGTH") or ""
        stream = environ["wsgi.input"]
        if length_text:
            if not length_text.isascii() or not length_text.isdigit() or len(length_text) > 18:
                raise InputError(400, Reason.BAD_REQUEST, "bad Content-Length")
            length = int(length_text)
            if length > limit:
                raise too_large
            raw: bytes = stream.read(length)
        else:  # chunked: read one byte past the limit to know whether it was exceeded
            raw = stream.read(limit + 1)
            if len(raw) > limit:
                raise too_large
        if not raw:
            raise InputError(400, Reason.BAD_REQUEST, "the body is empty: expected a JSON object")
        return raw
