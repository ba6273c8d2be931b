"""Another process holds the state file's writer lock (a second worker, a CLI command moving
state): the real daemon keeps answering (real daemon, real sockets).

An alert posted to a quick input is served on the HTTP loop's thread when the store is local
(app/httpserver.py). Were it to wait there for the lock, for up to the 5 s busy timeout, every
other connection would wait with it: health checks, metrics, the console. It waits a few
milliseconds at most there, then moves to an application thread (store/waiting.py), where it
waits for the lock as before and is answered 200 once it commits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bridge.store.statedir import DB_NAME
from bridge.store.writerlock import WriterLock
from tests.harness import Daemon, Simulator, am_alert_payload


@pytest.fixture
def daemon(simulator: Simulator, tmp_path: Path) -> Iterator[Daemon]:
    config: dict[str, Any] = {
        "targets": {"ops": {"type": "robot", "webhook": simulator.robot_url("tok-plain")}},
        "inputs": {"am": {"type": "alertmanager", "path": "/am", "token": "am-busy-1"}},
        "rules": [{"name": "all", "targets": ["ops"]}],
    }
    running = Daemon(config, directory=tmp_path)
    yield running
    running.stop()


def test_an_alert_waiting_for_the_store_holds_up_no_other_request(
    daemon: Daemon, simulator: Simulator, tmp_path: Path
) -> None:
    assert daemon.post("/am", am_alert_payload("Before"), token="am-busy-1").ok
    simulator.wait_messages(1, token="tok-plain")
    held = WriterLock(tmp_path / "state" / f"{DB_NAME}-writer")  # as another process's
    answers: list[requests.Response] = []
    posted = threading.Thread(
        target=lambda: answers.append(
            daemon.post("/am", am_alert_payload("Waited"), token="am-busy-1", timeout=30)
        )
    )
    try:
        held.acquire(5.0)
        posted.start()
        posted.join(1.0)  # it arrives, finds the lock held, and waits for it (on a thread)
        # The loop is free: another request is answered while the alert still waits.
        health = requests.get(f"{daemon.url}/-/healthy", timeout=3)
        assert health.status_code == 200
        assert answers == [] and posted.is_alive()
    finally:
        held.release()
        held.close()
    posted.join(30)
    assert [a.status_code for a in answers] == [200]  # committed once the lock was let go
    messages = simulator.wait_messages(2, token="tok-plain")
    assert "Waited" in str(messages[1]["body"])
