"""Generated hostile input for the grafana input: through the real WSGI app in-process (never a
5xx: a 4xx with a reason, or a clean 200), and at the parser itself (events or a 400, never
another exception; what it accepts is stored and rendered without a crash).

The strategies are those of tests/test_http_generated.py, mutating Grafana's documented sample.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.config.model import Config
from bridge.errors import InputError
from bridge.inputs import jsonbody
from bridge.inputs.grafana import parse_grafana
from bridge.inputs.http import HttpApp
from bridge.pipeline.render import render
from bridge.store.codec import event_from_json, event_to_json
from tests.harness import FIXTURES, compile_yaml
from tests.test_http_generated import (
    SETTINGS,
    bodies,
    call,
    check,
    content_lengths,
    headers,
    offline_app,
)

TOKEN = "grafana-token"
SAMPLE = json.loads((FIXTURES / "sources" / "grafana-webhook-firing.json").read_text("utf-8"))
CONFIG = f"""
targets: {{ops: {{type: robot, webhook: "http://127.0.0.1:9/robot/send?access_token=t"}}}}
inputs:
  grafana: {{type: grafana, path: /grafana, token: {TOKEN}}}
  grafana-split: {{type: grafana, path: /grafana-split, split: true}}
rules:
  - {{name: md, targets: [ops]}}
  - {{name: text, targets: [ops], msgtype: text, continue: true}}
"""
NOW = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("grafana-generated")


@pytest.fixture(scope="module")
def config(directory: Path) -> Config:
    config: Config = compile_yaml(directory, CONFIG)
    return config


@pytest.fixture(scope="module")
def app(directory: Path, config: Config) -> Iterator[HttpApp]:
    with offline_app(directory, config) as app:
        yield app


@SETTINGS
@given(
    path=st.sampled_from(["/grafana", "/grafana-split"]),
    body=bodies(SAMPLE),
    token=st.sampled_from([f"Bearer {TOKEN}"] * 4 + ["Bearer x", ""]),
    extra=headers,
    length=content_lengths,
)
def test_grafana_input(
    app: HttpApp, path: str, body: bytes, token: str, extra: dict[str, str], length: str | None
) -> None:
    status, answer = call(
        app, path, body, headers={**extra, "authorization": token}, content_length=length
    )
    result = check(status, answer)
    if status == 200:
        assert result["status"] == "accepted" and result["events"] >= 1
    if path == "/grafana" and token != f"Bearer {TOKEN}":
        assert status == 401  # the token is checked before the body is read


@SETTINGS
@given(body=bodies(SAMPLE), split=st.booleans())
def test_the_parser_gives_events_or_a_400(config: Config, body: bytes, split: bool) -> None:
    try:
        events = parse_grafana(
            jsonbody.loads(body), config.http_inputs()["grafana-split" if split else "grafana"], NOW
        )
    except InputError as exc:
        assert 400 <= exc.status < 500, exc
        return
    assert events
    for event in events:
        assert event_from_json(event_to_json(event)) == event  # what the store keeps
        for rule in config.rules:
            render(rule, event, NOW)  # a template error becomes the plain fallback, never raises
