"""/metrics from the real daemon, parsed with prometheus-client's own parser: the families the
issue lists, moving as alerts, rejections, failures and log lines happen."""

from __future__ import annotations

from pathlib import Path

import requests

from tests.harness import (
    Daemon,
    Simulator,
    am_alert_payload,
    metric_value,
    metrics_config,
    scrape_metrics,
    wait_until,
)


def test_metrics_follow_what_happens(sim: Simulator, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    log.write_text("")
    sim.control(
        "faults",
        {"path": "/robot/send", "token": "tok-b", "count": 1, "action": {"errcode": 310000}},
    )
    daemon = Daemon(metrics_config(sim, logs), directory=tmp_path)
    try:
        wait_until(lambda: "file input started" in daemon.log())
        assert daemon.post("/am", am_alert_payload("DiskFull"), token="t0ken").status_code == 200
        assert daemon.post("/am", am_alert_payload("Broken"), token="t0ken").status_code == 200
        assert daemon.post("/am", am_alert_payload("NoToken")).status_code == 401
        log.write_text("x ERROR disk\n" + "y" * 100)  # one match, then 100 bytes not read yet
        wait_until(
            lambda: metric_value(scrape_metrics(daemon), "dead_letters_total", target="bad") == 1
        )
        wait_until(
            lambda: metric_value(scrape_metrics(daemon), "messages_sent_total", target="ops") == 2
        )
        after = scrape_metrics(daemon)
        config_hash = requests.get(f"{daemon.url}/-/ready", timeout=5).json()["config"]["hash"]
    finally:
        daemon.stop()
    assert metric_value(after, "events_received_total", input="am") == 2
    assert metric_value(after, "events_rejected_total", input="am", reason="unauthorized") == 1
    assert metric_value(after, "rule_matches_total", rule="to-bad") == 1
    assert metric_value(after, "rule_matches_total", rule="all") == 2
    assert (
        metric_value(
            after, "send_failures_total", target="bad", reason="dingtalk_config", errcode="310000"
        )
        == 1
    )
    assert metric_value(after, "calls_total", target="ops") == 2
    assert metric_value(after, "outbox_pending", target="ops") == 0
    assert metric_value(after, "dead_letters_stored") == 1
    assert metric_value(after, "tail_lines_matched_total", input="app") == 1
    assert metric_value(after, "tail_lag_bytes", input="app", path=str(log)) == 100
    assert metric_value(after, "tail_lag_lines", input="app", path=str(log)) == 0  # no newline yet
    assert metric_value(after, "file_input_up", input="app") == 1
    assert metric_value(after, "config_last_reload_successful") == 1
    assert metric_value(after, "build_info", version=__import__("bridge").__version__) == 1
    assert metric_value(after, "config_info", hash=config_hash) == 1
