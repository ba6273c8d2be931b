"""The alerts of a `prometheus` input through the bundled alertmanager templates: golden files.

The sample, examples/prometheus-alerts.json, is a real post: Debian's prometheus 2.42.0 with an
always-firing rule (InstanceDown, `expr: vector(1)`, external label cluster=prod-hz) posting to
a path_prefix of /prom, its body captured as sent. Rendered firing as it arrives, resolved as
the sweep tells it when its endsAt passes, and the two grouped by a rule with group_by; the
variables Alertmanager's templates read (commonLabels, groupLabels, receiver, ...) are there.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bridge.alerting import grouping
from bridge.alerting.alertstate import event_of, received
from bridge.config.model import Config, PrometheusInput, Rule
from bridge.config.templating import ALERTMANAGER_VARIABLES, COMMON_VARIABLES
from bridge.inputs.kind import json_of
from bridge.inputs.prometheus import parse_alerts, sample
from bridge.locales import LOCALES
from bridge.model import Event
from bridge.pipeline.render import render, template_context
from tests.harness import ROOT, compile_yaml
from tests.test_render import assert_golden

SAMPLE = ROOT / "examples" / "prometheus-alerts.json"
NOW = datetime(2026, 12, 1, 20, 13, 30, tzinfo=UTC)  # between the sample's start and end

CONFIG = """
targets:
  ops: {type: robot, webhook: "http://127.0.0.1:1/robot/send?access_token=t"}
inputs:
  prom: {type: prometheus, path: /prom}
rules:
  - {name: prom-md, targets: [ops]}
  - {name: prom-text, targets: [ops], msgtype: text}
  - {name: prom-grouped, targets: [ops], group_by: [alertname]}
"""


@pytest.fixture(scope="module", params=LOCALES)
def config(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The config in each locale: the golden files of both."""
    text = f"{CONFIG}locale: {request.param}\n"
    result: Config = compile_yaml(tmp_path_factory.mktemp("render"), text)
    return result


def _spec(config: Config) -> PrometheusInput:
    spec = config.inputs["prom"]
    assert isinstance(spec, PrometheusInput)
    return spec


def _firing(config: Config) -> Event:
    [event] = sample(_spec(config), SAMPLE.read_bytes(), str(SAMPLE), NOW)
    return event


def _resolved(config: Config) -> Event:
    """The alert as the sweep resolves it when its endsAt passes unrefreshed."""
    [posted] = parse_alerts(json_of((SAMPLE).read_bytes()))
    state, _ = received("prom", posted, None, NOW.timestamp(), 300.0)
    return event_of(state, "resolved", NOW + timedelta(seconds=5))


def _rule(config: Config, name: str) -> Rule:
    return next(r for r in config.rules if r.name == name)


@pytest.mark.parametrize(
    ("case", "rule", "status"),
    [
        ("prom-firing.md", "prom-md", "firing"),
        ("prom-resolved.md", "prom-md", "resolved"),
        ("prom-resolved.txt", "prom-text", "resolved"),
    ],
)
def test_bundled_templates_render_prometheus_alerts(
    config: Config, case: str, rule: str, status: str
) -> None:
    event = _firing(config) if status == "firing" else _resolved(config)
    rendered = render(_rule(config, rule), event, NOW + timedelta(seconds=10))
    assert rendered.error is None
    assert_golden(f"{config.locale}/{case}", rendered.message.title, rendered.message.text)


def test_a_group_of_them_renders_as_alertmanager_notifications_do(config: Config) -> None:
    firing = _firing(config)
    labels = {**firing.labels, "instance": "web-2:9100"}
    alert = replace(firing.alerts[0], labels=labels, fingerprint="2")
    second = replace(firing, labels=labels, fingerprint="2", alerts=(alert,))
    group = grouping.group_event("prom-grouped", "k", [firing, second], NOW)
    rule = _rule(config, "prom-grouped")
    rendered = render(rule, group, NOW + timedelta(seconds=10))
    assert rendered.error is None
    assert_golden(f"{config.locale}/prom-group.md", rendered.message.title, rendered.message.text)
    context = template_context(group, rule, NOW)
    assert set(context) == COMMON_VARIABLES | ALERTMANAGER_VARIABLES
    assert context["groupLabels"] == {"alertname": "InstanceDown"}
    assert context["commonLabels"]["cluster"] == "prod-hz"
    assert "instance" not in context["commonLabels"]
    assert context["receiver"] == "prom-grouped"


def test_a_single_alert_is_its_own_group(config: Config) -> None:
    event = _firing(config)
    context = template_context(event, _rule(config, "prom-md"), NOW)
    assert context["groupLabels"] == context["commonLabels"] == dict(event.labels)
    assert context["body"]["labels"] == dict(event.labels)  # the alert as posted
