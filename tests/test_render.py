"""Rendering: golden files for the bundled templates, filters, fallback and the sandbox."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.config.model import Config
from bridge.config.templating import ALERTMANAGER_VARIABLES, COMMON_VARIABLES
from bridge.inputs.alertmanager import parse_notification
from bridge.inputs.webhook import parse_webhook
from bridge.locales import LOCALES
from bridge.pipeline.render import render, template_context
from tests.harness import compile_yaml, fixture_json

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 11, 28, 14, 0, 0, tzinfo=UTC)

CONFIG = """
targets:
  ops: {type: robot, webhook: "http://127.0.0.1:1/robot/send?access_token=t"}
inputs:
  am: {type: alertmanager, path: /am}
  hook:
    type: webhook
    path: /hook
    labels: {alertname: "{{ body.check }}", service: "{{ body.service }}"}
    annotations: {summary: "{{ body.message }}"}
    status: "{{ 'resolved' if body.ok else 'firing' }}"
rules:
  - {name: am-md, inputs: [am], targets: [ops], match: {msg: md}}
  - {name: am-text, inputs: [am], targets: [ops], msgtype: text, match: {msg: text}}
  - {name: hook-md, inputs: [hook], targets: [ops], match: {msg: md}}
  - {name: hook-text, inputs: [hook], targets: [ops], msgtype: text, match: {msg: text}}
"""
# The tests that read English words; CONFIG itself speaks the default, Chinese.
CONFIG_EN = CONFIG + "locale: en\n"


def assert_golden(case: str, title: str, text: str) -> None:
    """`case` is a path under tests/golden: its locale's folder, then the file."""
    shown = f"title: {title}\n\n{text}\n"
    golden = GOLDEN / case
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(shown, "utf-8")
    assert shown == golden.read_text("utf-8"), f"differs from {golden}; UPDATE_GOLDEN=1 to accept"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    config: Config = compile_yaml(tmp_path_factory.mktemp("render"), CONFIG_EN)
    return config


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Config]:
    """The render config in each locale (zh-CN: the default, nothing said)."""
    return {
        "zh-CN": compile_yaml(tmp_path_factory.mktemp("zh"), CONFIG),
        "en": compile_yaml(tmp_path_factory.mktemp("en"), CONFIG_EN),
    }


def _rule(config: Config, name: str) -> Any:
    return next(r for r in config.rules if r.name == name)


def _group_payload() -> dict[str, Any]:
    """Two firing alerts and one resolved in one notification, as Alertmanager groups them."""
    payload = fixture_json("firing.json")
    first = payload["alerts"][0]
    second = copy.deepcopy(first)
    second["labels"]["instance"] = "host-4:9100"
    second["annotations"]["description"] = "/var is 97% full"
    second["fingerprint"] = "0000000000000002"
    resolved = fixture_json("resolved.json")["alerts"][0]
    resolved["labels"]["instance"] = "host-5:9100"
    payload["alerts"] = [first, second, resolved]
    payload["commonLabels"] = {"alertname": "DiskFull", "job": "node", "severity": "warning"}
    return payload


CASES: dict[str, tuple[str, str, Callable[[], dict[str, Any]]]] = {
    "am-firing.md": ("am", "am-md", lambda: fixture_json("firing.json")),
    "am-resolved.md": ("am", "am-md", lambda: fixture_json("resolved.json")),
    "am-group.md": ("am", "am-md", _group_payload),
    "am-group.txt": ("am", "am-text", _group_payload),
    "hook-firing.md": (
        "hook",
        "hook-md",
        lambda: {
            "check": "Latency",
            "service": "pay",
            "message": "p99 > 2s",
            "ok": False,
            "region": "cn-hangzhou",
            "p99_ms": 2350,
        },
    ),
    "hook-resolved.txt": (
        "hook",
        "hook-text",
        lambda: {"check": "Latency", "service": "pay", "message": "p99 back to normal", "ok": True},
    ),
}


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_bundled_templates_match_golden_files(
    configs: dict[str, Config], case: str, locale: str
) -> None:
    config = configs[locale]
    input_name, rule_name, payload = CASES[case]
    spec = config.http_inputs()[input_name]
    parse = parse_notification if spec.type == "alertmanager" else parse_webhook
    event = parse(payload(), spec, NOW)[0]
    rendered = render(_rule(config, rule_name), event, NOW)
    assert rendered.error is None
    assert_golden(f"{locale}/{case}", rendered.message.title, rendered.message.text)


def test_context_offers_exactly_the_declared_variables(config: Config) -> None:
    am_event = parse_notification(fixture_json("firing.json"), config.http_inputs()["am"], NOW)[0]
    hook_event = parse_webhook(
        {"check": "c", "service": "s", "message": "m", "ok": True},
        config.http_inputs()["hook"],
        NOW,
    )[0]
    rule = _rule(config, "am-md")
    assert set(template_context(am_event, rule, NOW)) == COMMON_VARIABLES | ALERTMANAGER_VARIABLES
    assert set(template_context(hook_event, rule, NOW)) == COMMON_VARIABLES


FILTER_CASES = [
    ("{{ '2026-11-28T13:27:49Z' | localtime }}", "2026-11-28 21:27:49"),
    ("{{ '2026-11-28T13:27:49Z' | localtime('%H:%M') }}", "21:27"),
    ("{{ '0001-01-01T00:00:00Z' | localtime }}", ""),
    ("{{ '2026-11-28T11:55:00Z' | since }}", "2h 5m"),
    ("{{ 200 | duration }}", "3m 20s"),
    ("{{ '告警告警' | truncate_bytes(9) }}", "告警…"),
    ("{{ 'abc' | truncate_bytes(10) }}", "abc"),
    ("{{ '*bold* [x](y) #1' | md_escape }}", "\\*bold\\* \\[x\\]\\(y\\) \\#1"),
    ("{{ {'b': '2', 'a': '1', 'alertname': 'X'} | kv(exclude=['alertname']) }}", "a=1, b=2"),
]


# The words and durations in Chinese, the default locale (CONFIG says none).
ZH_CASES = [
    ("{{ '2026-11-28T11:55:00Z' | since }}", "2 小时 5 分"),
    ("{{ 200 | duration }}", "3 分 20 秒"),
    ("{{ 90000 | duration }}", "1 天 1 小时"),
    ("{{ 45 | duration }}", "45 秒"),
    ("{{ alerts[0] | lasted }}", ""),  # firing: no end yet
    ("{{ _(status | upper) }} {{ _('%(count)d firing', count=3) }}", "告警 3 条告警中"),
    ("{{ _('words no catalog has') }} {{ locale }}", "words no catalog has zh-CN"),
]


@pytest.mark.parametrize(
    ("text", "template", "expected"),
    [(CONFIG_EN, t, e) for t, e in FILTER_CASES] + [(CONFIG, t, e) for t, e in ZH_CASES],
)
def test_filters(tmp_path: Path, text: str, template: str, expected: str) -> None:
    config = compile_yaml(
        tmp_path,
        text.replace(
            "- {name: am-md, inputs: [am], targets: [ops], match: {msg: md}}",
            f"- {{name: am-md, inputs: [am], targets: [ops], template: {template!r}}}",
        ),
    )
    event = parse_notification(fixture_json("firing.json"), config.http_inputs()["am"], NOW)[0]
    assert render(_rule(config, "am-md"), event, NOW).message.text == expected


def test_timezone_is_configurable(tmp_path: Path) -> None:
    config = compile_yaml(
        tmp_path,
        "timezone: UTC\n"
        + CONFIG.replace(
            "- {name: am-md, inputs: [am], targets: [ops], match: {msg: md}}",
            "- {name: am-md, inputs: [am], targets: [ops],"
            " template: '{{ alerts[0].startsAt | localtime }}'}",
        ),
    )
    event = parse_notification(fixture_json("firing.json"), config.http_inputs()["am"], NOW)[0]
    assert render(_rule(config, "am-md"), event, NOW).message.text == "2026-11-28 13:27:49"


def test_render_error_falls_back_to_a_plain_message(tmp_path: Path) -> None:
    # `labels.team` is a known variable with a key this alert lacks: only render time can tell.
    config = compile_yaml(
        tmp_path,
        CONFIG.replace(
            "- {name: am-md, inputs: [am], targets: [ops], match: {msg: md}}",
            "- {name: am-md, inputs: [am], targets: [ops], template: 'team {{ labels.team }}',"
            " mention: {mobiles: ['13800000000']}}",
        ),
    )
    event = parse_notification(fixture_json("firing.json"), config.http_inputs()["am"], NOW)[0]
    rendered = render(_rule(config, "am-md"), event, NOW)
    assert rendered.error is not None and "team" in rendered.error
    message = rendered.message
    assert message.fallback
    assert "[FIRING] DiskFull" in message.text
    assert "Disk almost full" in message.text  # the essentials: each alert's summary
    assert "instance=host-3:9100" in message.text
    assert message.mention.mobiles == ("13800000000",)  # the people still get paged


ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ labels.__class__.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self.__init__.__globals__ }}",
    "{% for x in range(100000000) %}{% endfor %}",
]


@pytest.mark.parametrize("template", ESCAPES)
def test_sandbox_blocks_escapes(tmp_path: Path, template: str) -> None:
    config = compile_yaml(
        tmp_path,
        CONFIG.replace(
            "- {name: am-md, inputs: [am], targets: [ops], match: {msg: md}}",
            f"- {{name: am-md, inputs: [am], targets: [ops], template: {template!r}}}",
        ),
    )
    event = parse_notification(fixture_json("firing.json"), config.http_inputs()["am"], NOW)[0]
    rendered = render(_rule(config, "am-md"), event, NOW)
    assert rendered.message.fallback, rendered.message.text
    assert "uid=" not in rendered.message.text
    assert rendered.error is not None


def test_payload_text_is_never_evaluated_as_a_template(config: Config) -> None:
    payload = fixture_json("firing.json")
    payload["alerts"][0]["annotations"]["summary"] = "{{ 7 * 191 }} {% raw %}"
    event = parse_notification(payload, config.http_inputs()["am"], NOW)[0]
    text = render(_rule(config, "am-md"), event, NOW).message.text
    assert "{{ 7 \\* 191 }}" in text  # shown literally (markdown-escaped), not computed
    assert "1337" not in text


FILE_CONFIG = """
targets:
  ops: {type: robot, webhook: "http://127.0.0.1:1/robot/send?access_token=t"}
inputs:
  log:
    type: file
    paths: ["/var/log/app/*.log"]
    multiline: {start: '^\\d{4}-'}
    patterns:
      - regex: '(?P<level>ERROR|FATAL) (?P<logger>\\S+) - (?P<message>[^\\n]*)'
        labels: {severity: "{{ 'critical' if level == 'FATAL' else 'warning' }}"}
rules:
  - {name: file-md, targets: [ops], match: {level: ERROR}}
  - {name: file-text, targets: [ops], msgtype: text, match: {level: FATAL}}
"""
FILE_SAMPLE = """2026-11-28 21:59:58 INFO app - started
2026-11-28 21:59:59 ERROR db.pool - connection refused (host=db-1:5432)
2026-11-28 22:00:00 FATAL core - unrecoverable state
java.lang.IllegalStateException: invariant broken
    at com.example.Core.run(Core.java:42)
"""


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize(("case", "index"), [("file-line.md", 0), ("file-stack.txt", 1)])
def test_bundled_file_templates_match_golden_files(
    tmp_path: Path, case: str, index: int, locale: str
) -> None:
    from bridge.inputs.filetail.records import events_from_text

    config: Config = compile_yaml(tmp_path, FILE_CONFIG + f"locale: {locale}\n")
    spec = config.file_inputs()["log"]
    event = events_from_text(spec, FILE_SAMPLE, "/var/log/app/app.log", NOW)[index]
    rule = next(r for r in config.rules if r.matchers[0].matches(event.labels))
    rendered = render(rule, event, NOW)
    assert rendered.error is None
    assert_golden(f"{locale}/{case}", rendered.message.title, rendered.message.text)
