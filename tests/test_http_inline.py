"""Which requests the daemon serves on its HTTP loop's thread (HttpApp.runs_inline): POSTs to
inputs that only compute and commit, when the state store is local. The server's side (inline
requests on the loop, the rest on app threads, neither holding up the other) is in
test_httpserver.py; the end-to-end tests post to the real daemon through both paths."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bridge.config.model import RoutedInput
from bridge.inputs.http import HttpApp, Intake, WsgiApp

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
