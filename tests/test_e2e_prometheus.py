"""End to end: Prometheus without Alertmanager. The real daemon with a `prometheus` input at
/prom (Alertmanager's POST /api/v2/alerts at /prom/api/v2/alerts), the DingTalk simulator behind.

First the endpoint as any client sees it (Alertmanager's answers: 200 `{}`, 400 naming the
problem, 401 without the token), then alert state across a restart of the bridge: an alert
posted firing, the bridge restarted, and the alert resolved when its endsAt passes with nobody
posting it again. Then a real Prometheus (Debian's `prometheus`) with an always-firing rule and
`alerting.alertmanagers` pointed at the bridge: the firing message arrives (once, though
Prometheus re-sends the alert every 2 seconds); its condition false from a moment on,
Prometheus posts it resolved and the resolved message arrives; the rule file emptied and
Prometheus reloaded, the resolved message arrives (Prometheus 2.42 posts nothing for a removed
rule: the alert resolves when its endsAt passes); the rule back, firing again, then Prometheus
killed: the alert resolves when the endsAt of its last post (4 x max(resend delay, evaluation
interval) ahead) passes.

Without the binary the Prometheus test is skipped locally and fails in CI (CI=true), where
.ci/run installs it.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.harness import Daemon, PrometheusServer, Simulator, required_tool, wait_until

TOKEN = "tok-plain"
ENDPOINT = "/prom/api/v2/alerts"
WAIT = 30.0  # seconds; bounds every wait on Prometheus and the bridge
ALERTNAME = "E2EAlwaysFiring"
SUMMARY = "The e2e rule always fires"


def bridge_config(sim: Simulator, state_dir: Path) -> dict[str, Any]:
    return {
        "state_dir": str(state_dir),
        "locale": "en",  # the assertions read the English status words
        "targets": {
            "ops": {"type": "robot", "webhook": sim.robot_url(TOKEN), "rate_limit": {"messages": 0}}
        },
        "inputs": {"prom": {"type": "prometheus", "path": "/prom", "token": "none"}},
        "rules": [{"name": "all", "targets": ["ops"]}],
    }


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def titles(sim: Simulator) -> list[str]:
    return [m["title"] for m in sim.messages(token=TOKEN)]


def test_the_endpoint_answers_as_alertmanager(simulator: Simulator, tmp_path: Path) -> None:
    config = bridge_config(simulator, tmp_path / "state")
    config["inputs"]["prom"]["token"] = "s3cret"
    bridge = Daemon(config)
    try:
        now = datetime.now(UTC)
        alert = {
            "labels": {"alertname": "Direct", "instance": "web-1"},
            "annotations": {"summary": "posted by hand"},
            "startsAt": _rfc3339(now),
            "endsAt": _rfc3339(now + timedelta(minutes=5)),
            "generatorURL": "http://prom:9090/graph",
        }
        taken = bridge.post(ENDPOINT, [alert], token="s3cret")
        assert (taken.status_code, taken.json()) == (200, {})
        [message] = simulator.wait_messages(1, token=TOKEN)
        assert message["title"] == "[FIRING] Direct"
        assert "posted by hand" in message["text"] and "web-1" in message["text"]

        bad = bridge.post(ENDPOINT, [{"labels": {}}], token="s3cret")
        assert bad.status_code == 400
        assert "[0].labels must have at least one label" in bad.json()["error"]
        assert bridge.post(ENDPOINT, [alert]).status_code == 401
        assert bridge.post("/prom", [alert], token="s3cret").status_code == 404  # the prefix only
        assert requests.get(f"{bridge.url}{ENDPOINT}", timeout=5).status_code == 405
    finally:
        bridge.stop()


def test_an_alert_kept_across_a_restart_resolves_when_its_end_passes(
    simulator: Simulator, tmp_path: Path
) -> None:
    config = bridge_config(simulator, tmp_path / "state")
    now = datetime.now(UTC)
    alert = {
        "labels": {"alertname": "Kept", "instance": "db-1"},
        "startsAt": _rfc3339(now),
        "endsAt": _rfc3339(now + timedelta(seconds=6)),
    }
    first = Daemon(config)
    try:
        assert first.post(ENDPOINT, [alert]).status_code == 200
        simulator.wait_messages(1, token=TOKEN)
    finally:
        first.stop()
    again = Daemon(config)  # nobody posts the alert again
    try:
        wait_until(lambda: len(titles(simulator)) >= 2, timeout=WAIT)
        assert titles(simulator) == ["[FIRING] Kept", "[RESOLVED] Kept"]
        assert datetime.now(UTC) >= now + timedelta(seconds=6)  # not before its endsAt
        assert "alerts expired" in again.log()
    finally:
        again.stop()


# -- a real Prometheus --------------------------------------------------------------------------

RULES: dict[str, Any] = {
    "groups": [
        {
            "name": "e2e",
            "rules": [
                {
                    "alert": ALERTNAME,
                    "expr": "vector(1)",
                    "labels": {"severity": "page"},
                    "annotations": {"summary": SUMMARY},
                }
            ],
        }
    ]
}


@pytest.fixture
def prometheus_binary() -> str:
    return required_tool("prometheus", "--no-install-recommends prometheus")


class Prometheus(PrometheusServer):
    """A real Prometheus evaluating `rules_path` every second and posting its alerts to the
    bridge at `bridge_port` (path_prefix /prom), re-sending them every 2 seconds: each post's
    endsAt is 4 x 2s ahead. (Not 1s: after a reload Prometheus knows no Alertmanager until its
    service discovery speaks again, up to 5 s later, and posts nothing meanwhile; an endsAt of
    4 s would pass in that gap.)"""

    def __init__(self, binary: str, directory: Path, rules_path: Path, bridge_port: int) -> None:
        config = {
            "global": {"evaluation_interval": "1s", "scrape_interval": "1h"},
            "rule_files": [str(rules_path)],
            "alerting": {
                "alertmanagers": [
                    {
                        "api_version": "v2",
                        "path_prefix": "/prom",
                        "static_configs": [{"targets": [f"127.0.0.1:{bridge_port}"]}],
                    }
                ]
            },
        }
        flags = [
            f"--storage.tsdb.path={directory / 'tsdb'}",
            "--rules.alert.resend-delay=2s",
            "--web.enable-lifecycle",
        ]
        super().__init__(binary, config, directory, flags)

    def reload(self) -> None:
        response = requests.post(f"{self.url}/-/reload", timeout=10)
        assert response.status_code == 200, response.text


@pytest.fixture
def bridge(simulator: Simulator, tmp_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(bridge_config(simulator, tmp_path / "state"))
    yield daemon
    daemon.stop()


def test_real_prometheus_fires_resolves_on_reload_and_expires_when_stopped(
    prometheus_binary: str, simulator: Simulator, bridge: Daemon, tmp_path: Path
) -> None:
    rules_path = tmp_path / "rules.yml"
    rules_path.write_text(yaml.safe_dump(RULES), "utf-8")
    prometheus = Prometheus(prometheus_binary, tmp_path, rules_path, bridge.port)

    def wait_for(expected: list[str]) -> None:
        try:
            wait_until(lambda: len(titles(simulator)) >= len(expected), timeout=WAIT, interval=0.2)
        except AssertionError:
            raise AssertionError(
                f"messages {titles(simulator)}, expected {expected}\n--- prometheus ---\n"
                f"{prometheus.log()}\n--- bridge ---\n{bridge.log()}"
            ) from None
        assert titles(simulator) == expected

    def rules(expr: str | None) -> None:
        """The always-firing rule with `expr` (None: no rule at all), and Prometheus reloaded."""
        rule: dict[str, Any] = {**RULES["groups"][0]["rules"][0], "expr": expr}
        groups = [] if expr is None else [{"name": "e2e", "rules": [rule]}]
        rules_path.write_text(yaml.safe_dump({"groups": groups}), "utf-8")
        prometheus.reload()

    fired, resolved = f"[FIRING] {ALERTNAME}", f"[RESOLVED] {ALERTNAME}"
    try:
        wait_until(prometheus.ready, timeout=WAIT, interval=0.2)
        wait_for([fired])
        [firing] = simulator.messages(token=TOKEN)
        for text in (SUMMARY, "severity: page"):
            assert text in firing["text"]

        # The condition gone: Prometheus posts the alert resolved (endsAt = when it resolved).
        # (A changed rule starts afresh: it fires at its first evaluation, a post that refreshes
        # the alert, until the cutoff.)
        rules(f"vector(time()) < {time.time() + 3:.0f}")
        wait_for([fired, resolved])
        assert "alerts expired" not in bridge.log()  # told by Prometheus, not by the sweep

        # The rule removed: Prometheus (2.42) posts nothing more of it; told by whichever comes
        # first, a resolved post or the endsAt of the last one passing.
        rules("vector(1)")
        wait_for([fired, resolved, fired])
        rules(None)
        wait_for([fired, resolved] * 2)

        rules("vector(1)")
        wait_for([fired, resolved] * 2 + [fired])
        # Re-sent every 2 seconds meanwhile, and no message more: the rule's repeat_interval (4h)
        # decides repeats, as Alertmanager would.
        posts_before = _posts(bridge)
        wait_until(lambda: _posts(bridge) >= posts_before + 3, timeout=WAIT, interval=0.2)
        assert len(titles(simulator)) == 5

        prometheus.proc.send_signal(signal.SIGKILL)  # stopped while firing: no post ever again
        prometheus.proc.wait(10)
        killed = datetime.now(UTC)
        wait_for([fired, resolved] * 3)
        # Resolved when the last post's endsAt passed: 4 x 2s after that post (at most 2s
        # before the kill), not at once.
        assert datetime.now(UTC) - killed >= timedelta(seconds=5)
        assert "alerts expired" in bridge.log()
    finally:
        prometheus.stop()


def _posts(bridge: Daemon) -> float:
    """Events the bridge took from the prometheus input (its events_received counter)."""
    text = requests.get(f"{bridge.url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("dingtalk_bridge_events_received_total") and 'input="prom"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- replicas sharing PostgreSQL ----------------------------------------------------------------

ALERTS = 8  # 16 messages: within the simulated robot's 20 a minute


def test_replicas_sharing_a_database_tell_each_alert_once_and_resolve_it_once(
    simulator: Simulator, pg_url: str, tmp_path: Path
) -> None:
    """Prometheus given every replica's address posts each alert to each of them; all three
    sweep. Each alert is told firing once, and resolved once when its endsAt passes."""
    config = bridge_config(simulator, tmp_path / "state")
    config["state"] = {"url": pg_url}
    config["targets"]["ops"]["digest"] = {"enabled": False}  # one message per alert, to count
    replicas: list[Daemon] = []
    try:
        for _ in range(3):
            replicas.append(Daemon(config))
        now = datetime.now(UTC)
        alerts = [
            {
                "labels": {"alertname": "Replicated", "instance": f"host-{i:02}"},
                "startsAt": _rfc3339(now),
                "endsAt": _rfc3339(now + timedelta(seconds=4)),
            }
            for i in range(ALERTS)
        ]
        for replica in replicas:
            assert replica.post(ENDPOINT, alerts).status_code == 200
        try:
            wait_until(lambda: len(titles(simulator)) >= 2 * ALERTS, timeout=WAIT, interval=0.2)
        except AssertionError:
            logs = "\n".join(replica.log()[-2000:] for replica in replicas)
            raise AssertionError(f"{len(titles(simulator))} messages\n{logs}") from None
        time.sleep(2)  # every sweep has had its turn since (not a timing assertion)
        messages = simulator.messages(token=TOKEN)
        told = sorted((m["title"], _instance(m["text"])) for m in messages)
        expected = [
            (f"[{status}] Replicated", f"host-{i:02}")
            for status in ("FIRING", "RESOLVED")
            for i in range(ALERTS)
        ]
        assert told == expected
        assert sum("alerts expired" in replica.log() for replica in replicas) >= 1
    finally:
        for replica in replicas:
            replica.stop()


def _instance(text: str) -> str:
    found = re.search(r"instance: (host-\d\d)", text)
    assert found is not None, text
    return found.group(1)
