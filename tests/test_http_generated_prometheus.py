"""Generated hostile posts to a `prometheus` input, through the real WSGI app and state store
(as tests/test_http_generated.py does for the other inputs, with its strategies): a real
Prometheus post mutated, random JSON and bytes, generated headers. The property: never a 5xx,
always a 4xx with a JSON `reason` or Alertmanager's 200 `{}`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given

from bridge.inputs.http import HttpApp
from bridge.inputs.kind import json_of
from tests.harness import ROOT, compile_yaml
from tests.test_http_generated import (
    SETTINGS,
    bodies,
    call,
    check,
    content_lengths,
    headers,
    offline_app,
)

CONFIG = """
targets: {ops: {type: robot, webhook: "http://127.0.0.1:9/robot/send?access_token=t"}}
inputs:
  prom: {type: prometheus, path: /prom}
rules: [{name: all, targets: [ops], group_by: [alertname]}]
"""
POST = json_of((ROOT / "examples" / "prometheus-alerts.json").read_bytes())


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpApp]:
    directory = tmp_path_factory.mktemp("generated-prometheus")
    with offline_app(directory, compile_yaml(directory, CONFIG)) as app:
        yield app


@SETTINGS
@given(body=bodies(POST), extra=headers, length=content_lengths)
def test_prometheus_input(
    app: HttpApp, body: bytes, extra: dict[str, str], length: str | None
) -> None:
    status, answer = call(app, "/prom/api/v2/alerts", body, headers=extra, content_length=length)
    result = check(status, answer)
    if status == 200:
        assert result == {}
