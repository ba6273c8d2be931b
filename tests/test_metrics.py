"""/metrics from the real daemon, parsed with prometheus-client's own parser: the families the
issue lists, moving as alerts, rejections, failures and log lines happen."""

from __future__ import annotations

from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import Daemon, Simulator, am_alert_payload, wait_until


def scrape(daemon: Daemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(f"{daemon.url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((f"dingtalk_bridge_{name}", tuple(sorted(labels.items()))), -1.0)


def test_metrics_follow_what_happens(sim: Simulator, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    log.write_text("")
    sim.control(
        "faults",
        {"path": "/robot/send", "token": "tok-b", "count": 1, "action": {"errcode": 310000}},
    )
    daemon = Daemon(
        {
            "targets": {
                "ops": {
                    "type": "robot",
                    "webhook": sim.robot_url("tok-a"),
                    "rate_limit": {"messages": 0},
                },
                "bad": {
                    "type": "robot",
                    "webhook": sim.robot_url("tok-b"),
                    "rate_limit": {"messages": 0},
                },
            },
            "inputs": {
                "am": {"type": "alertmanager", "path": "/am", "token": "t0ken"},
                "app": {
                    "type": "file",
                    "paths": [str(logs / "*.log")],
                    "poll_interval": "200ms",
                    "patterns": [{"regex": r"ERROR (?P<what>\w+)"}],
                },
            },
            "rules": [
                {"name": "to-bad", "match": {"alertname": "Broken"}, "targets": ["bad"]},
                {"name": "all", "targets": ["ops"]},
            ],
        },
        directory=tmp_path,
    )
    try:
        wait_until(lambda: "file input started" in daemon.log())
        assert daemon.post("/am", am_alert_payload("DiskFull"), token="t0ken").status_code == 200
        assert daemon.post("/am", am_alert_payload("Broken"), token="t0ken").status_code == 200
        assert daemon.post("/am", am_alert_payload("NoToken")).status_code == 401
        log.write_text("x ERROR disk\n" + "y" * 100)  # one match, then 100 bytes not read yet
        wait_until(lambda: value(scrape(daemon), "dead_letters_total", target="bad") == 1)
        wait_until(lambda: value(scrape(daemon), "messages_sent_total", target="ops") == 2)
        after = scrape(daemon)
    finally:
        daemon.stop()
    assert value(after, "events_received_total", input="am") == 2
    assert value(after, "events_rejected_total", input="am", reason="unauthorized") == 1
    assert value(after, "rule_matches_total", rule="to-bad") == 1
    assert value(after, "rule_matches_total", rule="all") == 2
    assert (
        value(
            after, "send_failures_total", target="bad", reason="dingtalk_config", errcode="310000"
        )
        == 1
    )
    assert value(after, "calls_total", target="ops") == 2
    assert value(after, "outbox_pending", target="ops") == 0
    assert value(after, "dead_letters_stored") == 1
    assert value(after, "tail_lines_matched_total", input="app") == 1
    assert value(after, "tail_lag_bytes", input="app", path=str(log)) == 100
    assert value(after, "tail_lag_lines", input="app", path=str(log)) == 0  # no newline yet
    assert value(after, "file_input_up", input="app") == 1
    assert value(after, "config_last_reload_successful") == 1
    assert value(after, "build_info", version=__import__("bridge").__version__) == 1
    assert any(name == "dingtalk_bridge_config_info" for name, _ in after)
