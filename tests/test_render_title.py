"""The default title without Jinja (render.default_title) against the template it stands for.

A storm's digest renders a title for each alert it lists; a rule that keeps the default title
(config/rules.py DEFAULT_TITLE) gets it from plain Python. These tests hold the two equal for
generated events in both locales, and check which rules take the fast path.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.config.model import Config, Rule
from bridge.model import Alert, Event, Status
from bridge.pipeline.render import default_title, locale_of, render_title
from tests.harness import compile_yaml
from tests.test_render import NOW
from tests.test_render_hypothesis import HEX16, TEXT

CONFIG = """
targets:
  ops: {type: robot, webhook: "http://127.0.0.1:1/robot/send?access_token=t"}
inputs:
  am: {type: alertmanager, path: /am}
  grafana: {preset: grafana}
  gitlab: {preset: gitlab}
  app: {type: file, paths: [/var/log/app.log], patterns: [{regex: ERROR}]}
rules:
  - {name: plain, inputs: [am], targets: [ops]}
  - {name: own, inputs: [am], targets: [ops], title: "{{ status }} {{ labels.alertname }}"}
  - {name: grafana, inputs: [grafana], targets: [ops]}
  - {name: preset, inputs: [gitlab], targets: [ops]}
  - {name: file, inputs: [app], targets: [ops]}
"""

# Alertnames that collide but for case (`unique` ignores it), empty ones (`select` drops them),
# whitespace and newlines (the title is one line), and long ones (cut at 256 bytes).
POOL = st.sampled_from(["DiskFull", "diskfull", "DISKFULL", "HighCPU", "", " ", "a\nb", "磁盘满"])
NAMES = st.one_of(POOL, POOL, POOL, TEXT, st.text(min_size=200, max_size=300))


def _labels(draw: st.DrawFn, names: list[str]) -> dict[str, str]:
    """Labels named from `names`, and an alertname or not."""
    labels = draw(st.dictionaries(st.sampled_from(names), TEXT, max_size=2))
    if draw(st.booleans()):
        labels["alertname"] = draw(NAMES)
    return labels


@st.composite
def alerts(draw: st.DrawFn) -> Alert:
    labels = _labels(draw, ["instance", "job"])
    return _alert(labels, draw(st.sampled_from(["firing", "resolved"])), draw(HEX16))


@st.composite
def events(draw: st.DrawFn) -> Event:
    labels = _labels(draw, ["job", "severity"])
    return Event(
        input=draw(st.sampled_from(["am", "in put", ""])),
        kind=draw(st.sampled_from(["alertmanager", "webhook", "prometheus", "grafana"])),
        status=draw(st.sampled_from(["firing", "resolved"])),
        labels=labels,
        annotations={},
        fingerprint=draw(HEX16),
        received_at=NOW,
        alerts=tuple(draw(st.lists(alerts(), max_size=6))),
        payload={},
    )


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Config]:
    return {
        "zh-CN": compile_yaml(tmp_path_factory.mktemp("zh"), CONFIG),
        "en": compile_yaml(tmp_path_factory.mktemp("en"), CONFIG + "locale: en\n"),
    }


def _rule(config: Config, name: str) -> Rule:
    return next(r for r in config.rules if r.name == name)


@settings(max_examples=300, deadline=None)
@given(event=events(), locale=st.sampled_from(["zh-CN", "en"]))
def test_the_fast_default_title_is_what_the_template_renders(
    configs: dict[str, Config], event: Event, locale: str
) -> None:
    rule = _rule(configs[locale], "plain")
    through_jinja = render_title(replace(rule, title_is_default=False), event, NOW)
    assert default_title(event, locale_of(rule)) == through_jinja
    assert render_title(rule, event, NOW) == through_jinja


def _alert(labels: dict[str, str], status: Status = "firing", fingerprint: str = "0" * 16) -> Alert:
    return Alert(
        status=status,
        labels=labels,
        annotations={},
        starts_at=None,
        ends_at=None,
        generator_url="",
        fingerprint=fingerprint,
    )


def _named(name: str | None, status: Status = "firing") -> Alert:
    return _alert({} if name is None else {"alertname": name}, status)


# (event labels' alertname or None, the alerts' (alertname or None, status)): what the title
# says, by the template, in English.
TABLE = [
    ("DiskFull", [("DiskFull", "firing")], "[FIRING] DiskFull"),
    ("", [("DiskFull", "firing")], "[FIRING]"),  # `is defined`, though empty
    (None, [("DiskFull", "firing"), ("diskfull", "firing")], "[FIRING ×2] DiskFull"),
    (None, [("B", "resolved"), ("A", "firing"), ("B", "firing")], "[FIRING ×2] B, A"),
    (None, [("", "firing"), (None, "firing")], "[FIRING ×2] am"),  # no name: the input's
    (None, [], "[FIRING] am"),
]


@pytest.mark.parametrize(("name", "alerts", "title"), TABLE)
def test_the_default_title_of_chosen_events(
    configs: dict[str, Config],
    name: str | None,
    alerts: list[tuple[str | None, Status]],
    title: str,
) -> None:
    event = Event(
        input="am",
        kind="alertmanager",
        status="firing",
        labels={} if name is None else {"alertname": name},
        annotations={},
        fingerprint="1" * 16,
        received_at=NOW,
        alerts=tuple(_named(n, s) for n, s in alerts),
        payload={},
    )
    rule = _rule(configs["en"], "plain")
    assert render_title(replace(rule, title_is_default=False), event, NOW) == title
    assert default_title(event, locale_of(rule)) == title


@pytest.mark.parametrize(
    ("rule", "fast"),
    # Grafana's preset keeps the default title; GitLab's and file inputs have their own.
    [("plain", True), ("grafana", True), ("own", False), ("preset", False), ("file", False)],
)
def test_only_a_rule_with_the_default_title_takes_the_fast_path(
    configs: dict[str, Config], rule: str, fast: bool
) -> None:
    assert _rule(configs["en"], rule).title_is_default is fast


def test_a_title_written_as_the_default_takes_the_fast_path(tmp_path: Path) -> None:
    from bridge.config.rules import DEFAULT_TITLE

    config = compile_yaml(
        tmp_path,
        CONFIG.replace('title: "{{ status }} {{ labels.alertname }}"', f"title: {DEFAULT_TITLE!r}"),
    )
    assert _rule(config, "own").title_is_default


def test_extras_that_shadow_an_alerts_status_go_through_the_template(
    configs: dict[str, Config],
) -> None:
    """A source's extras are spread over the template's view of an alert: one that brings a
    `status` is counted by that one, which only the template sees."""
    rule = _rule(configs["en"], "plain")
    shadowing = replace(_named("A"), extras={"status": "resolved"})
    event = Event(
        input="am",
        kind="alertmanager",
        status="firing",
        labels={},
        annotations={},
        fingerprint="1" * 16,
        received_at=NOW,
        alerts=(shadowing, replace(shadowing, extras={})),
        payload={},
    )
    assert default_title(event, locale_of(rule)) is None
    assert render_title(rule, event, NOW) == "[FIRING] A"  # one firing, as the template counts
