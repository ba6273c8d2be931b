"""The WSGI application behind every HTTP input: routing, the built-in endpoints, errors.

It knows no input kind. For a request to an input's path it checks the method and hands the
request to the handler its kind registered (bridge/inputs/registry.py), which checks token or
signature and size before reading anything else, parses the body within limits
(bridge/inputs/jsonbody.py) and gives the events to the intake; the handler's answer becomes the
200 response. Every client mistake gets a 4xx with a JSON body saying what is wrong (and is
counted per input and reason); an unexpected exception is logged and answered 500, and the
server keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from bridge import jsontext
from bridge.clock import SYSTEM_CLOCK, Clock
from bridge.config.model import RoutedInput
from bridge.errors import InputError, Reason
from bridge.inputs import actionlink
from bridge.inputs.kind import accept_events
from bridge.inputs.registry import KINDS
from bridge.inputs.request import Request, Sink
from bridge.logs import fmt_fields
from bridge.model import Event

log = logging.getLogger("bridge.http")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_STATUS_TEXT = {
    200: "OK",
    400: "Bad Request",
    422: "Unprocessable Content",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


# Bodies not kept for the playground: encrypted callbacks, and people's chat messages.
_PRIVATE_BODIES = frozenset({"dingtalk_callback", "dingtalk_robot"})
# The environ's key for what `HttpApp.prepare` found: (the input, its request, the events or the
# InputError to answer).
PREPARED = "bridge.prepared"


class Intake(Sink, actionlink.ActionDesk, Protocol):
    """What the HTTP layer needs from the running bridge."""

    def routes(self) -> Mapping[str, RoutedInput]: ...

    def store_is_local(self) -> bool:
        """The state store waits on no network (SQLite): see HttpApp.runs_inline."""
        ...

    def readiness(self) -> tuple[bool, dict[str, Any]]: ...

    def reject(self, input_name: str, reason: Reason) -> None: ...

    def received(self, input_name: str, body: bytes) -> None:
        """A body `input_name` answered 200 to (the console's playground keeps the last few)."""
        ...

    def reload_over_http(self, authorization: str) -> tuple[int, dict[str, Any]]: ...

    def metrics(self) -> bytes: ...

    def console(self) -> tuple[str, WsgiApp] | None:
        """The operator's console (bridge/app/console/) and the path it is served under; None
        when it is off."""
        ...


def _json(
    start: StartResponse,
    status: int,
    body: Mapping[str, Any],
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    payload = jsontext.dumps_bytes(body)
    start(
        f"{status} {_STATUS_TEXT.get(status, '')}".rstrip(),
        [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Length", str(len(payload))),
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
    def __init__(self, intake: Intake, clock: Clock = SYSTEM_CLOCK):
        self.intake = intake
        self.clock = clock

    def runs_inline(self, environ: dict[str, Any]) -> bool:
        """May the server run this request on its loop thread (app/httpserver.py)? A POST to
        an input whose kind only computes and commits (InputRuntime.quick), when the store is
        local. Anything that may wait (a chat command calls DingTalk and Alertmanager, a
        PostgreSQL commit waits for the network, the console) runs on the threads."""
        if environ.get("REQUEST_METHOD") != "POST" or not self.intake.store_is_local():
            return False
        path = environ.get("PATH_INFO", "") or "/"
        spec = self.intake.routes().get(path)
        return spec is not None and KINDS[spec.type].quick and self._console(path) is None

    def prepare(self, environ: dict[str, Any]) -> None:
        """Read, check and parse an input request's body ahead of its call, where its kind can
        split that off (InputRuntime.prepare). The HTTP server does this for the requests it
        serves in one store batch before the batch begins (app/httpserver.py): the batch holds
        the state file's writer lock from its first write to its COMMIT, and the parsing of the
        requests after the first would otherwise hold it too, keeping other workers waiting.
        What it finds waits in the environ; the call answers it as if it had found it then."""
        if environ.get("REQUEST_METHOD") != "POST":
            return
        spec = self.intake.routes().get(environ.get("PATH_INFO", ""))
        prepare = None if spec is None else KINDS[spec.type].prepare
        if spec is None or prepare is None:
            return
        request = Request(environ, self.clock)
        found: list[Event] | InputError
        try:
            found = prepare(request, spec)
        except InputError as exc:
            found = exc
        environ[PREPARED] = (spec, request, found)

    def _console(self, path: str) -> WsgiApp | None:
        """The console, when `path` is its (it answers everything under its path itself)."""
        console = self.intake.console()
        if console is not None and (path == console[0] or path.startswith(console[0] + "/")):
            return console[1]
        return None

    def __call__(self, environ: dict[str, Any], start: StartResponse) -> list[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        console = self._console(path)
        if console is not None:  # pages, and its own errors
            return list(console(environ, start))
        try:
            if path.startswith("/-/") or path == "/metrics":
                return self._builtin(path, method, environ, start)
            return self._input(path, method, environ, start)
        except InputError as exc:
            return _error(start, exc)
        except Exception:
            # (An action link's token is a credential until used: not in the log.)
            shown = actionlink.PREFIX + "…" if path.startswith(actionlink.PREFIX) else path
            log.exception(fmt_fields("request failed", path=shown))
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
        if path.startswith(actionlink.PREFIX):
            page = actionlink.serve(path, method, environ, self.intake, self.clock)
            start(
                f"{page.status} {_STATUS_TEXT.get(page.status, '')}".rstrip(),
                [*actionlink.HEADERS, *page.headers, ("Content-Length", str(len(page.html)))],
            )
            return [page.html]
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
            prepared = environ.get(PREPARED)
            if prepared is not None and prepared[0] is spec:  # (not when a reload came between)
                _, request, found = prepared
                if isinstance(found, InputError):
                    raise found
                answer = accept_events(found, spec, self.intake)
            else:
                if prepared is not None:
                    environ["wsgi.input"].seek(0)  # read again, for the input as it is now
                serve = KINDS[spec.type].serve
                assert serve is not None  # the routes hold routed kinds only
                request = Request(environ, self.clock)
                answer = serve(request, spec, self.intake)
        except InputError as exc:
            self._rejected(spec, exc)
            raise
        if request.raw and spec.type not in _PRIVATE_BODIES:
            self.intake.received(spec.name, request.raw)  # after the commit, outside it
        return _json(start, 200, answer)

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
