"""/metrics from the real daemon, parsed with prometheus-client's own parser: the families the
issue lists, moving as alerts, rejections, failures and log lines happen."""

from __future__ import annotations

from pathlib import Path

from tests.harness import (
    Daemon,
    Simulator,
    am_alert_payload,
    metric_value,
    metrics_after_traffic,
    metrics_config,
    scrape_metrics,
)


def test_metrics_follow_what_happens(sim: Simulator, tmp_path: Path) -> None:
    after, config_hash, log = metrics_after_traffic(sim, tmp_path)
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
    assert metric_value(after, "outbox_claimed", target="ops") == 0
    assert metric_value(after, "dead_letters_stored") == 1
    assert metric_value(after, "tail_lines_matched_total", input="app") == 1
    assert metric_value(after, "tail_lag_bytes", input="app", path=str(log)) == 100
    assert metric_value(after, "tail_lag_lines", input="app", path=str(log)) == 0  # no newline yet
    assert metric_value(after, "file_input_up", input="app") == 1
    assert metric_value(after, "config_last_reload_successful") == 1
    assert metric_value(after, "build_info", version=__import__("bridge").__version__) == 1
    assert metric_value(after, "config_info", hash=config_hash) == 1


def test_a_refused_request_counts_as_rejected_not_as_received(
    sim: Simulator, tmp_path: Path
) -> None:
    # DingTalk is busy, so the one message the target may hold stays queued: the next alert is
    # refused (503) and must be counted once, as rejected, not as received or matched.
    sim.control(
        "faults", {"path": "/robot/send", "token": "tok-a", "count": 100, "action": {"errcode": -1}}
    )
    config = metrics_config(sim, tmp_path / "logs")
    config["targets"]["ops"] |= {"queue_size": 1, "retry": {"initial": "30s"}}
    daemon = Daemon(config, directory=tmp_path)
    try:
        assert daemon.post("/am", am_alert_payload("First"), token="t0ken").status_code == 200
        for _ in range(3):
            refused = daemon.post("/am", am_alert_payload("Second"), token="t0ken")
            assert refused.status_code == 503
        after = scrape_metrics(daemon)
    finally:
        daemon.stop()
    assert metric_value(after, "events_received_total", input="am") == 1
    assert metric_value(after, "rule_matches_total", rule="all") == 1
    assert metric_value(after, "events_rejected_total", input="am", reason="queue_full") == 3
