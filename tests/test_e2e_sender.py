"""The sender's robot-wide pacing end to end: the real daemon, the simulator, real sockets.

The simulator enforces DingTalk's rate limit as DingTalk does (20 counted messages in any 60 s,
the 21st answered 130101 and the robot locked for 10 minutes) and counts only the messages it
processed, not the requests its injected faults answered.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.harness import Daemon, Simulator, am_alert_payload, wait_until

DINGTALK_WINDOW = 60.0


@pytest.fixture
def sim() -> Iterator[Simulator]:
    # DingTalk's defaults for both robots: 20 a minute, then a 10-minute lockout.
    sim = Simulator(spec={"robots": {"tok-pair": {}, "tok-outage": {}}})
    yield sim
    sim.stop()


def calls_to(sim: Simulator, token: str) -> list[dict[str, Any]]:
    return [r for r in sim.requests_seen() if r["token"] == token]


def most_in_any_window(times: list[float], window: float = DINGTALK_WINDOW) -> int:
    times = sorted(times)
    return max(
        (sum(1 for u in times[i:] if u < t + window) for i, t in enumerate(times)), default=0
    )


def alert_names(sim: Simulator, token: str, pattern: str) -> list[str]:
    found: list[str] = []
    for message in sim.messages(token=token):
        found += re.findall(pattern, f"{message['title']}\n{message['text']}")
    return found


def eventually(predicate: Any, timeout: float, what: str, daemon: Daemon) -> Any:
    try:
        return wait_until(predicate, timeout, interval=0.2)
    except AssertionError:
        raise AssertionError(f"{what} (not within {timeout}s)\n{daemon.log()}") from None


def test_two_targets_of_one_robot_never_exceed_its_20_a_minute(sim: Simulator) -> None:
    # Two targets on one robot token, as an operator sets up two teams in one group chat: each
    # with its own keyword. Each gets 20 alerts at once; separately each would fit in a minute.
    url = sim.robot_url("tok-pair")
    daemon = Daemon(
        {
            "targets": {
                "team-a": {"type": "robot", "webhook": url, "keywords": ["TEAM-A"]},
                "team-b": {"type": "robot", "webhook": url, "keywords": ["TEAM-B"]},
            },
            "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
            "rules": [
                {"name": "a", "match": {"team": "a"}, "targets": ["team-a"]},
                {"name": "b", "match": {"team": "b"}, "targets": ["team-b"]},
            ],
        }
    )
    try:
        names = [(f"Pair{i:04d}", "a" if i % 2 else "b") for i in range(40)]
        with ThreadPoolExecutor(8) as pool:
            codes = list(
                pool.map(
                    lambda nt: daemon.post("/am", am_alert_payload(nt[0], team=nt[1])).status_code,
                    names,
                )
            )
        assert codes == [200] * 40
        wanted = {n for n, _ in names}
        eventually(
            lambda: wanted <= set(alert_names(sim, "tok-pair", r"Pair\d{4}")),
            150,
            "all 40 alerts in the chat",
            daemon,
        )
        calls = calls_to(sim, "tok-pair")
        throttled = [c for c in calls if c["errcode"] == 130101]
        assert not throttled, f"{throttled}\n{daemon.log()}"
        assert most_in_any_window([c["time"] for c in calls]) <= 20, calls
        texts = [f"{m['title']}\n{m['text']}" for m in sim.messages(token="tok-pair")]
        assert any("TEAM-A" in t for t in texts) and any("TEAM-B" in t for t in texts)
        # Both targets report the same robot (a hash: the token is not in it).
        queues = wait_until(lambda: daemon_ready(daemon)["queues"], 5)
        assert queues["team-a"]["robot"] == queues["team-b"]["robot"]
        assert "tok-pair" not in queues["team-a"]["robot"]
    finally:
        daemon.stop()


def daemon_ready(daemon: Daemon) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(f"{daemon.url}/-/ready", timeout=5).json()
    return body


def test_after_an_outage_the_next_minute_belongs_to_the_queue(sim: Simulator) -> None:
    # DingTalk answers HTTP 500 eight times in a row (an outage), then works. 20 alerts queue
    # up meanwhile: the robot's window is empty after the outage (the 500s never reached its
    # counter), so all 20 go out at once, not 12 now and 8 a minute later.
    daemon = Daemon(
        {
            "targets": {
                "ding": {
                    "type": "robot",
                    "webhook": sim.robot_url("tok-outage"),
                    "retry": {"initial": 0.2, "max": 1},
                    "digest": {"enabled": False},
                }
            },
            "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
            "rules": [{"name": "all", "targets": ["ding"]}],
        }
    )
    try:
        outage = 8
        sim.control(
            "faults",
            {
                "path": "/robot/send",
                "token": "tok-outage",
                "count": outage,
                "action": {"http_status": 500},
            },
        )
        names = [f"Outage{i:04d}" for i in range(20)]
        for name in names:
            assert daemon.post("/am", am_alert_payload(name)).status_code == 200
        eventually(
            lambda: set(names) <= set(alert_names(sim, "tok-outage", r"Outage\d{4}")),
            45,
            "all 20 alerts in the chat",
            daemon,
        )
        calls = calls_to(sim, "tok-outage")
        faulted = [c for c in calls if c["fault"]]
        delivered = [c for c in calls if c["delivered"]]
        assert len(faulted) == outage and len(delivered) == len(names), calls
        assert not [c for c in calls if c["errcode"] == 130101], calls
        # Once DingTalk answers again, the whole queue goes: no wait for a window the failed
        # calls would have filled (that wait was 51 s before).
        recovered = faulted[-1]["time"]
        took = delivered[-1]["time"] - recovered
        assert took < 15, f"the 20th delivery came {took:.1f}s after the outage\n{daemon.log()}"
        # The outage was probed with the oldest message alone, not burnt through the queue.
        retries = [line for line in daemon.log().splitlines() if "delivery retry" in line]
        assert len(retries) == outage, daemon.log()
        ids = {re.search(r" id=(\S+)", line)[1] for line in retries}  # type: ignore[index]
        assert len(ids) == 1, retries
        time.sleep(0.5)
        assert len(calls_to(sim, "tok-outage")) == len(calls)  # nothing sent twice
    finally:
        daemon.stop()


def test_an_alert_the_sender_fails_on_blocks_nothing_behind_it(sim: Simulator) -> None:
    # The alert seen in the field: startsAt without a zone, endsAt with Z. Before intake
    # normalised such times, building its message raised on every try and nothing behind it
    # was sent. Whatever intake makes of it now, the sender must not be blocked by a message:
    # the alert behind it arrives, and if this one failed, it is a dead letter saying why.
    daemon = Daemon(
        {
            "targets": {"ding": {"type": "robot", "webhook": sim.robot_url("tok-pair")}},
            "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
            "rules": [{"name": "all", "targets": ["ding"]}],
        }
    )
    try:
        odd = am_alert_payload("OddTimes")
        odd["alerts"][0]["startsAt"] = "2026-01-01T10:00:00"
        odd["alerts"][0]["endsAt"] = "2026-01-01T10:05:00Z"
        response = daemon.post("/am", odd)
        assert response.status_code in (200, 400), response.text
        assert response.status_code == 400 or response.json()["messages"] == 1, response.text
        assert daemon.post("/am", am_alert_payload("BehindIt")).status_code == 200
        eventually(
            lambda: "BehindIt" in alert_names(sim, "tok-pair", r"BehindIt|OddTimes"),
            30,
            "the alert behind it delivered",
            daemon,
        )
        state = eventually(
            lambda: (s := daemon_ready(daemon))["queues"]["ding"]["pending"] == 0 and s,
            10,
            "nothing left pending",
            daemon,
        )
        assert state["status"] == "ready", state
        if state["store"]["dead_letters"]:  # the sender failed on it: it says so
            assert state["queues"]["ding"]["internal_errors"] == 1, state
            [warning] = state["warnings"]
            assert "target ding" in warning and "offset" in warning, warning
            metrics = requests.get(f"{daemon.url}/metrics", timeout=5).text
            assert 'dingtalk_bridge_internal_errors_total{target="ding"} 1.0' in metrics
            assert "reason=internal" in daemon.log()
        else:  # delivered: intake or the renderer made sense of the times
            assert response.status_code == 400 or "OddTimes" in alert_names(
                sim, "tok-pair", r"OddTimes"
            )
    finally:
        daemon.stop()
