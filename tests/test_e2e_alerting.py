"""Alert semantics through the real daemon: grouping, dedup with repeat_interval, resolved
messages, and the 503 that makes Alertmanager retry when the state store cannot commit."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import Daemon, Simulator, am_alert_payload, wait_until


@pytest.fixture
def sim() -> Iterator[Simulator]:
    sim = Simulator(spec={"robots": {"tok": {"rate_per_minute": 0}}})
    yield sim
    sim.stop()


def webhook_config(sim: Simulator, **rule: Any) -> dict[str, Any]:
    return {
        "targets": {"ops": {"type": "robot", "webhook": sim.robot_url("tok")}},
        "inputs": {
            "hook": {
                "type": "webhook",
                "path": "/hook",
                "labels": {"alertname": "{{ body.check }}", "service": "{{ body.service }}"},
                "annotations": {"summary": "{{ body.check }} on {{ body.service }}"},
                "status": "{{ 'resolved' if body.get('ok') else 'firing' }}",
            }
        },
        "rules": [{"name": "hooks", "targets": ["ops"], "msgtype": "markdown", **rule}],
    }


def test_grouping_sends_one_message_per_group_after_group_wait(sim: Simulator) -> None:
    daemon = Daemon(webhook_config(sim, group_by=["service"], group_wait="1s", group_interval="2s"))
    try:
        started = time.monotonic()
        for check in ("Latency", "Errors", "Saturation"):
            answer = daemon.post("/hook", {"check": check, "service": "pay"})
            assert answer.status_code == 200
            assert (answer.json()["messages"], answer.json()["held_for_grouping"]) == (0, 1)
        assert daemon.post("/hook", {"check": "Latency", "service": "web"}).status_code == 200
        messages = sim.wait_messages(2, timeout=10)
        assert time.monotonic() - started >= 1.0  # nothing before group_wait
        by_service = {("pay" if "pay" in m["text"] else "web"): m for m in messages}
        pay = by_service["pay"]["text"]
        assert all(f"{check} on pay" in pay for check in ("Latency", "Errors", "Saturation"))
        assert "web" not in pay
        assert "Latency on web" in by_service["web"]["text"]

        # A change to the group (one alert resolves) is told at the next group_interval.
        daemon.post("/hook", {"check": "Errors", "service": "pay", "ok": True})
        [update] = sim.wait_messages(3, timeout=10)[2:]
        assert "🟢 恢复: alertname=Errors · Errors on pay" in update["text"]  # resolved, in Chinese
    finally:
        daemon.stop()


def test_the_same_alert_is_not_sent_again_before_repeat_interval(sim: Simulator) -> None:
    daemon = Daemon(webhook_config(sim, repeat_interval="3s"))
    try:
        payload = {"check": "DiskFull", "service": "db"}
        daemon.post("/hook", payload)
        sim.wait_messages(1)
        started = time.monotonic()
        again = daemon.post("/hook", payload)  # the same alert again: deduplicated
        assert again.json()["not_sent_again_yet"] == 1 and again.json()["messages"] == 0
        time.sleep(1.0)
        assert len(sim.messages()) == 1
        wait_until(lambda: time.monotonic() - started > 3.2, timeout=5)
        daemon.post("/hook", payload)  # after repeat_interval: sent again
        sim.wait_messages(2)
        daemon.post("/hook", {**payload, "ok": True})  # resolved: sent at once
        [*_, resolved] = sim.wait_messages(3)
        assert "[恢复]" in resolved["title"]  # resolved, in the default locale
    finally:
        daemon.stop()


def test_a_store_that_cannot_commit_answers_503_and_nothing_is_lost(sim: Simulator) -> None:
    config = {
        "targets": {"ops": {"type": "robot", "webhook": sim.robot_url("tok")}},
        "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
        "rules": [{"name": "all", "targets": ["ops"]}],
    }
    daemon = Daemon(config)
    try:
        # Another process holds the database's write lock longer than the daemon waits (5 s).
        locker = sqlite3.connect(
            daemon.dir / "state" / "state.db", isolation_level=None, check_same_thread=False
        )
        locker.execute("BEGIN EXCLUSIVE")
        released = threading.Event()

        def release_later() -> None:
            time.sleep(10)  # twice the daemon's 5 s busy timeout, even on a loaded machine
            locker.execute("COMMIT")
            released.set()

        threading.Thread(target=release_later, daemon=True).start()
        # The 503 comes after the busy timeout, or two when a background commit (the WAL's
        # upkeep, a sender) was already waiting for the lock: allow for that.
        refused = daemon.post("/am", am_alert_payload("Locked"), timeout=30)
        assert refused.status_code == 503, refused.text
        assert refused.json()["reason"] == "store"
        assert refused.headers["Retry-After"]
        assert released.wait(30)
        locker.close()
        # Alertmanager retries; now it is accepted and delivered, once.
        assert daemon.post("/am", am_alert_payload("Locked")).status_code == 200
        [message] = sim.wait_messages(1)
        assert "Locked" in message["title"]
        assert "commit failed" in daemon.log() and "reason=store" in daemon.log()
    finally:
        daemon.stop()
