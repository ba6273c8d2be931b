"""Which requests the daemon serves on its HTTP loop's thread (HttpApp.runs_inline): POSTs to
inputs that only compute and commit, when the state store is local. The server's side (inline
requests on the loop, the rest on app threads, neither holding up the other) is in
test_httpserver.py; the end-to-end tests post to the real daemon through both paths."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bridge.config.model import HttpInput, RoutedInput
from bridge.errors import Reason
from bridge.inputs.http import PREPARED, HttpApp, Intake, WsgiApp
from bridge.inputs.kind import json_post
from bridge.inputs.registry import KINDS
from bridge.inputs.request import Request
from bridge.model import Accepted, Event

ROUTES = {
    "/alertmanager": "alertmanager",
    "/grafana": "grafana",
    "/hooks/ci": "webhook",
    "/api/v2/alerts": "prometheus",
    "/chat": "dingtalk_robot",  # a chat command calls DingTalk and Alertmanager: may wait
    "/callback": "dingtalk_callback",
    "/console/hook": "alertmanager",  # under the console's path: the console answers it
}


class FakeIntake:
    def __init__(self, local: bool) -> None:
        self.local = local

    def routes(self) -> Mapping[str, RoutedInput]:
        return {p: cast(RoutedInput, SimpleNamespace(type=t)) for p, t in ROUTES.items()}

    def store_is_local(self) -> bool:
        return self.local

    def console(self) -> tuple[str, WsgiApp] | None:
        return ("/console", lambda environ, start: [b""])


@pytest.mark.parametrize(
    ("method", "path", "local", "inline"),
    [
        ("POST", "/alertmanager", True, True),
        ("POST", "/grafana", True, True),
        ("POST", "/hooks/ci", True, True),
        ("POST", "/api/v2/alerts", True, True),
        ("POST", "/alertmanager", False, False),  # PostgreSQL: a commit waits for the network
        ("GET", "/alertmanager", True, False),
        ("POST", "/chat", True, False),
        ("POST", "/callback", True, False),
        ("POST", "/console/hook", True, False),
        ("POST", "/nowhere", True, False),
        ("GET", "/-/healthy", True, False),
        ("POST", "/-/reload", True, False),
    ],
)
def test_runs_inline(method: str, path: str, local: bool, inline: bool) -> None:
    app = HttpApp(cast(Intake, FakeIntake(local)))
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path}
    assert app.runs_inline(environ) is inline


# -- parsing ahead of the batch (HttpApp.prepare) ------------------------------------------------

BODY = (Path(__file__).parent.parent / "examples" / "alertmanager-firing.json").read_bytes()


def am_input(token: str | None, name: str = "am") -> HttpInput:
    return HttpInput(
        name=name, type="alertmanager", path="/alertmanager", token=token, max_body_bytes=1 << 20
    )


class FakeSink(FakeIntake):
    """An intake that records what it is given, for one Alertmanager input."""

    def __init__(self, spec: HttpInput) -> None:
        super().__init__(local=True)
        self.spec = spec
        self.accepted: list[list[Event]] = []
        self.rejected: list[Reason] = []

    def routes(self) -> Mapping[str, RoutedInput]:
        return {"/alertmanager": self.spec}

    def accept(self, spec: RoutedInput, events: list[Event]) -> Accepted:
        self.accepted.append(events)
        return Accepted(messages=len(events))

    def reject(self, input_name: str, reason: Reason) -> None:
        self.rejected.append(reason)

    def received(self, input_name: str, body: bytes) -> None:
        pass


def post_environ(body: bytes, authorization: str = "") -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/alertmanager",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": authorization,
        "wsgi.input": io.BytesIO(body),
    }


def call(app: HttpApp, environ: dict[str, Any]) -> tuple[int, Any]:
    status: list[str] = []
    body = b"".join(app(environ, lambda s, headers: status.append(s)))
    return int(status[0].split()[0]), json.loads(body)


@pytest.fixture
def counted_parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The Alertmanager kind with its parses counted (in `prepare` and in `serve` alike)."""
    kind = KINDS["alertmanager"]
    assert kind.prepare is not None
    original = kind.prepare
    parses: list[int] = []

    def counting(request: Request, spec: Any) -> list[Event]:
        parses.append(1)
        return original(request, spec)

    monkeypatch.setitem(
        KINDS, "alertmanager", replace(kind, prepare=counting, serve=json_post(counting))
    )
    return parses


def test_a_prepared_request_is_parsed_once_and_its_events_accepted(
    counted_parses: list[int],
) -> None:
    sink = FakeSink(am_input(None))
    app = HttpApp(cast(Intake, sink))
    environ = post_environ(BODY)
    app.prepare(environ)
    assert len(counted_parses) == 1 and PREPARED in environ
    events = environ[PREPARED][2]
    assert call(app, environ) == (200, call(app, post_environ(BODY))[1])  # as if unprepared
    assert len(counted_parses) == 2  # the prepared call parsed nothing; the plain one did
    assert sink.accepted[0] is events


def test_a_request_refused_while_prepared_is_answered_and_counted_once(
    counted_parses: list[int],
) -> None:
    sink = FakeSink(am_input("s3cret"))
    app = HttpApp(cast(Intake, sink))
    environ = post_environ(BODY, "Bearer wrong")
    app.prepare(environ)
    assert sink.rejected == []  # not yet: the call answers it (after the batch's commit)
    status, answer = call(app, environ)
    assert (status, answer["reason"]) == (401, "unauthorized")
    assert sink.rejected == [Reason.UNAUTHORIZED] and sink.accepted == []
    assert len(counted_parses) == 1


def test_a_request_prepared_before_a_reload_is_read_again_for_the_input_as_it_is_now(
    counted_parses: list[int],
) -> None:
    sink = FakeSink(am_input(None))
    app = HttpApp(cast(Intake, sink))
    environ = post_environ(BODY)
    app.prepare(environ)  # its body read and parsed for the input as it was
    sink.spec = am_input(None, "am-renamed")  # a reload
    status, answer = call(app, environ)
    assert (status, answer["status"]) == (200, "accepted")
    assert len(counted_parses) == 2  # the body was read again
    assert {event.input for event in sink.accepted[0]} == {"am-renamed"}


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/alertmanager"), ("POST", "/nowhere"), ("POST", "/-/reload")]
)
def test_only_posts_to_inputs_are_prepared(method: str, path: str) -> None:
    app = HttpApp(cast(Intake, FakeSink(am_input(None))))
    environ = {**post_environ(BODY), "REQUEST_METHOD": method, "PATH_INFO": path}
    app.prepare(environ)
    assert PREPARED not in environ and environ["wsgi.input"].tell() == 0
