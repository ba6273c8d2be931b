"""The example Prometheus alerting rules (packaging/prometheus/dingtalk-bridge.rules.yml), checked
with Debian's `prometheus` package: `promtool check rules`, the promtool unit tests beside them,
the metric names they use against what the real daemon exports (and `promtool check metrics` on
that), and a real Prometheus scraping the real daemon until the dead-letter alert fires.

Without promtool/prometheus the tests are skipped locally and fail in CI (CI set), where
.ci/run installs the package.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bridge.errors import Reason
from tests.harness import (
    ROOT,
    Daemon,
    PrometheusServer,
    Simulator,
    am_alert_payload,
    metrics_after_traffic,
    required_tool,
    wait_until,
)

RULES = ROOT / "packaging" / "prometheus" / "dingtalk-bridge.rules.yml"
RULES_TEST = ROOT / "packaging" / "prometheus" / "dingtalk-bridge.rules.test.yml"
JOB = "dingtalk-bridge"  # the job name the rules assume for `up`
METRIC = re.compile(r"(?<![A-Za-z0-9_:])dingtalk_bridge_[A-Za-z0-9_:]+")
REASON_MATCHER = re.compile(r'\breason\s*=~\s*"([^"]*)"')
WAIT = 30.0  # seconds; bounds every wait on Prometheus


@pytest.fixture(scope="module")
def promtool() -> str:
    return required_tool("promtool", "--no-install-recommends prometheus")


def _run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=30)


def _rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES.read_text("utf-8"))
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def _alert_names() -> set[str]:
    return {rule["alert"] for rule in _rules()}


def test_promtool_check_rules(promtool: str) -> None:
    result = _run([promtool, "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr
    rules = _rules()
    assert len(rules) >= 8 and all("alert" in rule for rule in rules)
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_promtool_unit_tests_pass_and_cover_every_alert(promtool: str) -> None:
    result = _run([promtool, "test", "rules", str(RULES_TEST)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    # Each alert is shown firing (with its annotations) and shown not firing somewhere.
    tests = yaml.safe_load(RULES_TEST.read_text("utf-8"))["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    fired = {c["alertname"] for c in cases if c["exp_alerts"]}
    quiet = {c["alertname"] for c in cases if not c["exp_alerts"]}
    assert fired == _alert_names()
    assert quiet == _alert_names()
    for case in cases:
        for alert in case["exp_alerts"]:
            assert {"summary", "description"} <= set(alert["exp_annotations"]), case
            assert "severity" in alert["exp_labels"], case


# -- what the real daemon exports -----------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> str:
    """/metrics of a real daemon that has made every kind of series the rules use: two targets
    (one delivering, one with a dead letter after DingTalk's 310000), a rejected request, and a
    file input following a file it has not read to the end."""
    sim = Simulator(spec={"robots": {"tok-a": {"rate_per_minute": 0}, "tok-b": {}}})
    try:
        return metrics_after_traffic(sim, tmp_path_factory.mktemp("exported"))[0]
    finally:
        sim.stop()


def test_every_metric_in_the_rules_is_exported_by_the_daemon(exported: str) -> None:
    used: dict[str, set[str]] = {}
    for rule in _rules():
        for name in METRIC.findall(rule["expr"]):
            used.setdefault(name, set()).add(rule["alert"])
    assert len(used) >= 8, used  # the regex found the names, not nothing
    series = {
        sample.name
        for family in text_string_to_metric_families(exported)
        for sample in family.samples
    }
    missing = {name: sorted(alerts) for name, alerts in used.items() if name not in series}
    assert not missing, f"the rules use series the daemon does not export: {missing}"
    # The rules that use none of the bridge's own metrics are about `up` for the bridge's job.
    others = [r for r in _rules() if not METRIC.search(r["expr"])]
    assert others and all(f'up{{job="{JOB}"}}' in r["expr"] for r in others), others
    # Reasons matched in the rules are reasons the bridge really reports.
    for rule in _rules():
        for alternatives in REASON_MATCHER.findall(rule["expr"]):
            unknown = set(alternatives.split("|")) - {r.value for r in Reason}
            assert not unknown, f"{rule['alert']}: no such reason {unknown}"


def test_promtool_check_metrics_is_clean(promtool: str, exported: str) -> None:
    assert "dingtalk_bridge_send_failures_total{" in exported  # the busy exposition, not a stub
    result = _run([promtool, "check", "metrics"], stdin=exported)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).strip() == ""


# -- a real Prometheus ---------------------------------------------------------------------------


class Prometheus(PrometheusServer):
    """`prometheus` on 127.0.0.1, scraping and evaluating every second, data in `directory`."""

    def __init__(self, binary: str, config: dict[str, Any], directory: Path) -> None:
        super().__init__(binary, config, directory, [f"--storage.tsdb.path={directory / 'data'}"])

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/api/v1/alerts", timeout=5)
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()["data"]["alerts"]
        return alerts


def test_real_prometheus_fires_the_dead_letter_alert(sim: Simulator, tmp_path: Path) -> None:
    binary = required_tool("prometheus", "--no-install-recommends prometheus")
    (tmp_path / "bridge").mkdir()
    daemon = Daemon(
        {
            "targets": {
                "ops": {"type": "robot", "webhook": sim.robot_url("tok-a")},
                "bad": {"type": "robot", "webhook": sim.robot_url("tok-b")},
            },
            "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
            "rules": [
                {"name": "to-bad", "match": {"alertname": "Broken"}, "targets": ["bad"]},
                {"name": "all", "targets": ["ops"]},
            ],
        },
        directory=tmp_path / "bridge",
    )
    # The packaged rules file itself, not a copy: DingTalkBridgeDeadLetters has no `for:`, so
    # nothing needs shortening for it to fire within the test.
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": JOB,
                "static_configs": [{"targets": [f"127.0.0.1:{daemon.port}"]}],
            }
        ],
    }
    try:
        prometheus = Prometheus(binary, config, tmp_path)
        try:
            _dead_letter_alert_fires(prometheus, daemon, sim)
        finally:
            prometheus.stop()
    finally:
        daemon.stop()


def _dead_letter_alert_fires(prometheus: Prometheus, daemon: Daemon, sim: Simulator) -> None:
    wait_until(prometheus.ready, timeout=WAIT, interval=0.2)
    # Scraped and healthy, with the dead-letter counter seen at 0 before anything fails (an
    # increase needs a sample from before it).
    wait_until(
        lambda: [r["value"][1] for r in prometheus.query(f'up{{job="{JOB}"}}')] == ["1"],
        timeout=WAIT,
        interval=0.2,
    )
    # Five samples, so that increase()'s extrapolation to the end of its window (up to one
    # scrape interval) cannot make one dead letter look like two in the annotation.
    counter = 'dingtalk_bridge_dead_letters_total{target="bad"}'
    wait_until(
        lambda: prometheus.query(f"count_over_time({counter}[1m]) >= 5"),
        timeout=WAIT,
        interval=0.2,
    )
    assert [r["value"][1] for r in prometheus.query(f"max_over_time({counter}[1m])")] == ["0"]
    # A healthy bridge: nothing pending or firing (DingTalkBridgeAbsent is pending until the
    # first evaluation after the first scrape).
    wait_until(lambda: not prometheus.alerts(), timeout=WAIT, interval=0.2)

    sim.control(
        "faults",
        {"path": "/robot/send", "token": "tok-b", "count": 1, "action": {"errcode": 310000}},
    )
    assert daemon.post("/am", am_alert_payload("Broken")).ok
    assert daemon.post("/am", am_alert_payload("DiskFull")).ok

    def firing() -> list[dict[str, Any]]:
        return [
            a
            for a in prometheus.alerts()
            if a["labels"]["alertname"] == "DingTalkBridgeDeadLetters" and a["state"] == "firing"
        ]

    try:
        alerts = wait_until(firing, timeout=WAIT, interval=0.2)
    except AssertionError:
        raise AssertionError(
            f"no firing dead-letter alert: {prometheus.alerts()}\n"
            f"--- bridge log ---\n{daemon.log()}\n--- prometheus log ---\n{prometheus.log()}"
        ) from None
    assert len(alerts) == 1
    assert alerts[0]["labels"] == {
        "alertname": "DingTalkBridgeDeadLetters",
        "severity": "warning",
        "job": JOB,
        "instance": f"127.0.0.1:{daemon.port}",
        "target": "bad",
    }
    assert alerts[0]["annotations"]["summary"] == (
        "dingtalk-bridge: messages for target bad were given up on"
    )
    assert alerts[0]["annotations"]["description"].startswith(
        f"About 1 message(s) for target bad on 127.0.0.1:{daemon.port} became dead letters"
    )
    # ops delivered: no alert about it, and up is still 1.
    sim.wait_messages(1, token="tok-a")
    assert all(a["labels"].get("target") != "ops" for a in prometheus.alerts())
    assert [r["value"][1] for r in prometheus.query(f'up{{job="{JOB}"}}')] == ["1"]
