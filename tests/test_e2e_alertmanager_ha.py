"""End to end with two real Alertmanagers clustered on loopback, each sending to the bridge.

Both peers get the alert (as Prometheus sends it to each), and both deliver: the peer timeout is
0, so the second peer does not wait for the first one's notification log to reach it (what a slow
receiver or a partition does in production). Each peer's receiver lists two URLs: the one
bridge's twice, or those of two replicas sharing one PostgreSQL state. Up to four copies of each
notification arrive; the chat must get the firing once and the resolved once, every other copy
absorbed.

Without the binary the test is skipped locally and fails in CI (CI=true), where .ci/run installs it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness import (
    Daemon,
    PrometheusServer,
    Simulator,
    free_port,
    metric_value,
    required_tool,
    scrape_metrics,
    wait_until,
)

ALERTNAME = "E2EHaDiskFull"
WAIT = 20.0  # seconds; every wait below is bounded by this


class ClusteredAlertmanager(PrometheusServer):
    """A real Alertmanager on 127.0.0.1 gossiping on `cluster_port` with `peers`."""

    def __init__(
        self,
        binary: str,
        config: dict[str, Any],
        directory: Path,
        cluster_port: int,
        peers: list[int],
    ) -> None:
        directory.mkdir()
        (directory / "data").mkdir()
        flags = [
            f"--storage.path={directory / 'data'}",
            f"--cluster.listen-address=127.0.0.1:{cluster_port}",
            f"--cluster.advertise-address=127.0.0.1:{cluster_port}",
            *(f"--cluster.peer=127.0.0.1:{port}" for port in peers),
            "--cluster.peer-timeout=0s",  # both peers send at once: the copies the bridge absorbs
            "--cluster.settle-timeout=2s",
            "--log.level=debug",
        ]
        super().__init__(binary, config, directory, flags)

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        response = requests.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=5)
        assert response.status_code == 200, f"{response.status_code} {response.text}"


@pytest.fixture(params=["one bridge", "two replicas"])
def bridges(request: pytest.FixtureRequest, sim: Simulator) -> Iterator[list[Daemon]]:
    """The bridge, or two replicas of it on one PostgreSQL database."""
    config: dict[str, Any] = {
        "targets": {"ops": {"type": "robot", "webhook": sim.robot_url("tok-a")}},
        "inputs": {"am": {"type": "alertmanager", "path": "/alertmanager"}},
        "rules": [{"name": "all", "targets": ["ops"], "msgtype": "markdown"}],
    }
    count = 1
    if request.param == "two replicas":
        config["state"] = {"url": request.getfixturevalue("pg_url")}
        count = 2
    started: list[Daemon] = []
    try:
        for _ in range(count):
            started.append(Daemon(config))
        yield started
    finally:
        for bridge in started:
            bridge.stop()


@pytest.fixture
def cluster(bridges: list[Daemon], tmp_path: Path) -> Iterator[list[ClusteredAlertmanager]]:
    binary = required_tool("prometheus-alertmanager", "prometheus-alertmanager")
    # Two URLs per receiver: one bridge's twice, or one per replica.
    urls = [f"{bridges[i % len(bridges)].url}/alertmanager" for i in range(2)]
    config = {
        "route": {
            "receiver": "bridges",
            "group_by": ["alertname"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "bridges",
                "webhook_configs": [{"url": url, "send_resolved": True} for url in urls],
            }
        ],
    }
    ports = [free_port(), free_port()]
    peers: list[ClusteredAlertmanager] = []
    with contextlib.ExitStack() as stack:
        for i, port in enumerate(ports):
            others = [p for p in ports if p != port]
            am = ClusteredAlertmanager(binary, config, tmp_path / f"am{i}", port, others)
            stack.callback(am.stop)
            peers.append(am)
        for am in peers:
            wait_until(am.ready, timeout=WAIT, interval=0.1)
        yield peers


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _alert(instance: str, starts: datetime, ends: datetime | None = None) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "labels": {"alertname": ALERTNAME, "instance": instance},
        "annotations": {"summary": "disk almost full"},
        "startsAt": _rfc3339(starts),
    }
    if ends is not None:
        alert["endsAt"] = _rfc3339(ends)
    return alert


def _counts(bridges: list[Daemon]) -> tuple[float, float]:
    """(notifications received, duplicates absorbed) by the input, over every replica."""
    received = duplicates = 0.0
    for bridge in bridges:
        text = scrape_metrics(bridge)
        received += max(0.0, metric_value(text, "events_received_total", input="am"))
        duplicates += max(0.0, metric_value(text, "events_duplicate_total", input="am"))
    return received, duplicates


def _pending(bridges: list[Daemon]) -> float:
    """Messages waiting in the (shared) outbox, as any replica sees it (-1: none)."""
    return max(metric_value(scrape_metrics(b), "outbox_pending", target="ops") for b in bridges)


def _messages(sim: Simulator, status: str) -> list[dict[str, Any]]:
    return [
        m
        for m in sim.messages(token="tok-a")
        if ALERTNAME in m["text"] and status in m["title"] + m["text"]
    ]


def _diagnostics(sim: Simulator, bridges: list[Daemon], peers: list[ClusteredAlertmanager]) -> str:
    logs = "".join(f"\n--- {am.url} ---\n{am.log()[-4000:]}" for am in peers)
    ours = "".join(f"\n--- bridge {b.url} ---\n{b.log()}" for b in bridges)
    return f"\n--- messages ---\n{sim.messages()}{ours}{logs}"


def _each_copy_absorbed(
    sim: Simulator,
    bridges: list[Daemon],
    peers: list[ClusteredAlertmanager],
    status: str,
    before: tuple[float, float],
) -> tuple[float, float]:
    """Wait for the copies of one notification (up to 2 peers x 2 URLs); exactly one message
    about it, and every other copy counted as a duplicate. The counts after (see _counts)."""
    expected = before[0] + 4
    # All four when both peers send (the usual case with a peer timeout of 0); if the second
    # peer's notification log learnt of the first's in time, fewer: then this wait runs out.
    with contextlib.suppress(AssertionError):
        wait_until(lambda: _counts(bridges)[0] >= expected, timeout=WAIT / 2, interval=0.2)
    received, duplicates = _counts(bridges)
    context = _diagnostics(sim, bridges, peers)
    copies = received - before[0]
    assert copies >= 2, f"the doubled URL sends each notification twice{context}"
    wait_until(lambda: _messages(sim, status), timeout=WAIT)
    # Counted once nothing waits in the outbox: a copy let through would have been sent by then.
    wait_until(lambda: _pending(bridges) <= 0, timeout=WAIT)
    assert len(_messages(sim, status)) == 1, context
    assert duplicates - before[1] == copies - 1, context
    return received, duplicates


def test_two_clustered_alertmanagers_reach_the_chat_once(
    sim: Simulator, bridges: list[Daemon], cluster: list[ClusteredAlertmanager]
) -> None:
    instance = f"e2e-{uuid.uuid4().hex[:8]}:9100"
    started = datetime.now(UTC)
    for am in cluster:  # as Prometheus does: every Alertmanager gets every alert
        am.post_alerts([_alert(instance, started)])
    # Chinese, the bundled templates' default: 告警 (firing), 恢复 (resolved).
    counts = _each_copy_absorbed(sim, bridges, cluster, "告警", (0.0, 0.0))

    ended = datetime.now(UTC)
    for am in cluster:
        am.post_alerts([_alert(instance, started, ended)])
    _each_copy_absorbed(sim, bridges, cluster, "恢复", counts)
    assert len(_messages(sim, "告警")) == 1  # no late copy of the firing slipped through
