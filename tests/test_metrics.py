"""/metrics from the real daemon, parsed with prometheus-client's own parser: the families the
issue lists, moving as alerts, rejections, failures and log lines happen."""

from __future__ import annotations

from pathlib import Path

from tests.harness import Simulator, metric_value, metrics_after_traffic


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
    assert metric_value(after, "dead_letters_stored") == 1
    assert metric_value(after, "tail_lines_matched_total", input="app") == 1
    assert metric_value(after, "tail_lag_bytes", input="app", path=str(log)) == 100
    assert metric_value(after, "tail_lag_lines", input="app", path=str(log)) == 0  # no newline yet
    assert metric_value(after, "file_input_up", input="app") == 1
    assert metric_value(after, "config_last_reload_successful") == 1
    assert metric_value(after, "build_info", version=__import__("bridge").__version__) == 1
    assert metric_value(after, "config_info", hash=config_hash) == 1
