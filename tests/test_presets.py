"""Presets (bridge/config/presets.py, examples/sources/): each is one line of config that passes
`check`; every sample of every preset renders to its golden file in both locales; the operator's
keys go over the preset's; an unknown preset is one clear problem; `sources` lists and shows
them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.config.model import Config
from bridge.config.presets import presets
from bridge.config.schema import schema
from bridge.errors import ConfigError
from bridge.inputs.registry import KINDS
from bridge.locales import LOCALES
from bridge.pipeline.render import render
from tests.harness import compile_yaml
from tests.test_render import assert_golden

NOW = datetime(2026, 1, 21, 14, 30, 0, tzinfo=UTC)
PRESETS = sorted(presets())


def one_line(name: str, locale: str = "zh-CN", extra: str = "") -> str:
    """A config whose only input is the preset, and two rules (markdown and text) fed by it."""
    return f"""
locale: {locale}
targets:
  ops: {{type: robot, webhook: "http://127.0.0.1:1/robot/send?access_token=t"}}
inputs:
  src: {{preset: {name}{extra}}}
rules:
  - {{name: md, targets: [ops], match: {{msg: md}}}}
  - {{name: text, targets: [ops], msgtype: text, match: {{msg: text}}}}
"""


def test_there_are_the_presets_the_issue_names() -> None:
    assert {
        "grafana",
        "aliyun-cloudmonitor",
        "zabbix",
        "uptime-kuma",
        "gitlab",
        "jenkins",
        "elasticsearch-watcher",
        "skywalking",
    } <= set(PRESETS)


def test_the_schema_names_every_preset() -> None:
    assert schema()["$defs"]["input"]["properties"]["preset"]["enum"] == PRESETS


@pytest.mark.parametrize("name", PRESETS)
def test_a_preset_is_one_line_of_config(tmp_path: Path, name: str) -> None:
    config: Config = compile_yaml(tmp_path, one_line(name))
    spec = config.inputs["src"]
    preset = presets()[name]
    assert spec.type == preset.input["type"]
    assert getattr(spec, "path", None) == preset.input["path"]
    assert getattr(spec, "preset", None) == name
    for rule in config.rules:  # the rules default to the preset's bodies
        assert rule.body.name is not None and rule.body.name.startswith(f"{preset.body}.")
    assert preset.samples and all(s.file.is_file() for s in preset.samples)


def _rendered(config: Config, sample: Path) -> str:
    spec = config.inputs["src"]
    sample_of = KINDS[spec.type].sample
    assert sample_of is not None
    events = sample_of(spec, sample.read_bytes(), str(sample), NOW)
    assert events, sample
    shown = []
    for rule in config.rules:
        for event in events:
            rendered = render(rule, event, NOW)
            assert rendered.error is None, rendered.error
            labels = json.dumps(dict(event.labels), ensure_ascii=False)
            shown.append(
                f"--- {rule.msgtype}, {event.status}, labels {labels}\n"
                f"title: {rendered.message.title}\n\n{rendered.message.text}"
            )
    return "\n\n".join(shown)


CASES = [(name, sample.file) for name in PRESETS for sample in presets()[name].samples]


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize(("name", "sample"), CASES, ids=[f"{n}-{s.name}" for n, s in CASES])
def test_every_sample_renders_to_its_golden_file(
    tmp_path: Path, name: str, sample: Path, locale: str
) -> None:
    config: Config = compile_yaml(tmp_path, one_line(name, locale))
    case = f"{locale}/sources/{name}-{sample.stem}.txt"
    assert_golden(case, name, _rendered(config, sample))


SAMPLE_FACTS: dict[str, tuple[str, dict[str, str], str]] = {
    # preset/sample -> (the first event's status, some of its labels, a text its markdown shows)
    "aliyun-cloudmonitor/alarm.txt": (
        "firing",
        {"alertname": "基础监控-ECS-内存使用率", "severity": "warn"},
        "**97.39**",
    ),
    "grafana/firing.json": ("firing", {"team": "blue"}, "**B** = 44.2394"),
    "grafana/resolved.constructed.json": ("resolved", {"alertname": "High memory usage"}, "us-1"),
    "zabbix/default-params.json": ("firing", {"alertname": "{ALERT.SUBJECT}"}, "{ALERT.MESSAGE}"),
    "zabbix/problem.constructed.json": (
        "firing",
        {"host": "web-01", "severity": "warning"},
        "web-01",
    ),
    "zabbix/resolved.constructed.json": (
        "resolved",
        {"host": "web-01"},
        "Problem duration: 12m 5s",
    ),
    "uptime-kuma/down.constructed.json": ("firing", {"alertname": "Order API"}, "ECONNREFUSED"),
    "uptime-kuma/test.constructed.json": (
        "firing",
        {"alertname": "Uptime Kuma"},
        "My Webhook Testing",
    ),
    "gitlab/pipeline-event.json": (
        "resolved",
        {"project": "gitlab-org/gitlab-test", "ref": "master"},
        "",
    ),
    "gitlab/job-event.json": ("resolved", {"alertname": "JobFailed", "job": "test"}, "test (test)"),
    "jenkins/completed.json": ("resolved", {"job": "asgard"}, "SUCCESS"),
    "jenkins/completed-failure.constructed.json": ("firing", {"job": "asgard"}, "FAILURE"),
    "elasticsearch-watcher/watch.synthetic.json": (
        "firing",
        {"alertname": "log_error_watch"},
        "5 error log",
    ),
    "skywalking/alarms-v10.4.0.json": ("resolved", {"service": "serviceA", "level": "WARNING"}, ""),
    "skywalking/alarms-v10.3.0.json": ("firing", {"service": "serviceA", "level": "WARNING"}, ""),
}


@pytest.mark.parametrize(("name", "sample"), CASES, ids=[f"{n}-{s.name}" for n, s in CASES])
def test_what_each_sample_says(tmp_path: Path, name: str, sample: Path) -> None:
    """The golden files hold everything; this names the facts each must get right."""
    config: Config = compile_yaml(tmp_path, one_line(name, "en"))
    spec = config.inputs["src"]
    sample_of = KINDS[spec.type].sample
    assert sample_of is not None
    [first, *_] = sample_of(spec, sample.read_bytes(), str(sample), NOW)
    status, labels, shown = SAMPLE_FACTS[f"{name}/{sample.name}"]
    assert first.status == status
    assert labels.items() <= dict(first.labels).items()
    assert shown in render(config.rules[0], first, NOW).message.text


def test_skywalking_fans_the_array_out_and_a_recovery_pairs_with_its_alarm(tmp_path: Path) -> None:
    config: Config = compile_yaml(tmp_path, one_line("skywalking"))
    spec = config.inputs["src"]
    sample_of = KINDS[spec.type].sample
    assert sample_of is not None
    samples = {s.file.name: s.file for s in presets()["skywalking"].samples}
    old = sample_of(
        spec, samples["alarms-v10.3.0.json"].read_bytes(), str(samples["alarms-v10.3.0.json"]), NOW
    )
    new = sample_of(
        spec, samples["alarms-v10.4.0.json"].read_bytes(), str(samples["alarms-v10.4.0.json"]), NOW
    )
    assert [e.labels["service"] for e in old] == ["serviceA", "serviceB"]
    assert [e.status for e in new] == ["resolved", "firing"]
    # serviceA's alarm (10.3 shape) and its recovery (10.4, recoveryTime) are one alert
    assert old[0].fingerprint == new[0].fingerprint != old[1].fingerprint


def test_the_operators_keys_go_over_the_presets(tmp_path: Path) -> None:
    extra = ", path: /aliyun, labels: {team: infra, severity: page}, token: s3cret"
    config: Config = compile_yaml(tmp_path, one_line("aliyun-cloudmonitor", extra=extra))
    spec: Any = config.inputs["src"]
    assert spec.path == "/aliyun" and spec.token == "s3cret"
    assert spec.format == "form"  # the preset's
    # labels merged key by key: the preset's stay, team is added, severity replaced
    assert {"alertname", "instance", "metric", "team", "severity"} <= set(spec.labels)
    sample = presets()["aliyun-cloudmonitor"].samples[0].file
    event = KINDS["webhook"].sample(spec, sample.read_bytes(), str(sample), NOW)[0]  # type: ignore[misc]
    assert event.labels["team"] == "infra" and event.labels["severity"] == "page"
    assert event.labels["alertname"] == "基础监控-ECS-内存使用率"


def test_an_unknown_preset_is_one_problem_naming_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_yaml(tmp_path, one_line("grafanna"))
    [problem] = caught.value.problems  # not also "type is required"
    assert problem.path == "inputs.src.preset" and problem.line == 6
    assert problem.message == f"must be one of: {', '.join(PRESETS)}"


def test_sources_lists_and_shows_the_presets(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bridge", "sources", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    listing = run()
    assert listing.returncode == 0
    for name in PRESETS:
        assert name in listing.stdout
    shown = run("gitlab")
    assert shown.returncode == 0
    assert "Settings > Webhooks" in shown.stdout and "preset: gitlab" in shown.stdout
    # The inputs it prints, with a target and a rule, are a config that compiles to the preset.
    printed = shown.stdout.split("## In the config")[1].split("\n", 1)[1].split("\n## ")[0]
    inputs = yaml.safe_load(printed)["inputs"]
    config: Config = compile_yaml(
        tmp_path,
        yaml.safe_dump(
            {
                "targets": {
                    "ops": {
                        "type": "robot",
                        "webhook": "http://127.0.0.1:1/robot/send?access_token=t",
                    }
                },
                "inputs": inputs,
                "rules": [{"name": "all", "targets": ["ops"]}],
            }
        ),
    )
    [spec] = config.inputs.values()
    assert getattr(spec, "preset", None) == "gitlab" and getattr(spec, "path", "") == (
        "/sources/gitlab"
    )
    unknown = run("nope")
    assert unknown.returncode == 2 and "no preset 'nope'" in unknown.stderr
