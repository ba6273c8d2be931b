"""Connection exhaustion: idle sockets and slow-drip bodies must not lock legitimate clients out.

With waitress's defaults (100 connections, 120 s channel timeout) about 100 idle sockets made
every other client wait for minutes. The listener's limits are now `server.connection_limit` and
`server.idle_timeout`, with defaults that hold 1,000 idle and 200 slow clients with room to spare.
(How fast the legitimate request is answered under that load is measured in bench/connections.py.)
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import requests

from bridge.app import fdlimit
from bridge.app.fdlimit import ensure_descriptors
from tests.harness import Daemon, Simulator, am_alert_payload, wait_until
from tests.slowclients import HostileClients


def post(daemon: Daemon, alertname: str, timeout: float) -> requests.Response:
    return requests.post(f"{daemon.url}/am", json=am_alert_payload(alertname), timeout=timeout)


def config(sim: Simulator, **server: Any) -> dict[str, Any]:
    return {
        "server": server,
        "targets": {"ops": {"type": "robot", "webhook": sim.robot_url("tok-plain")}},
        "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
        "rules": [{"name": "all", "targets": ["ops"]}],
    }


def test_a_legitimate_post_is_answered_while_1000_idle_and_200_slow_clients_hang_on(
    simulator: Simulator, tmp_path: Path
) -> None:
    daemon = Daemon(config(simulator), directory=tmp_path)  # the default limits
    try:
        with HostileClients("127.0.0.1", daemon.port, "/am", idle=1000, slow=200) as hostile:
            response = post(daemon, "Legit", timeout=5)
            assert response.status_code == 200, response.text
            # The load was really there while the request went through.
            assert len(hostile.idle) == 1000 and len(hostile.slow) == 200
        simulator.wait_messages(1, token="tok-plain")
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.log()


def test_a_silent_connection_is_closed_after_idle_timeout(
    simulator: Simulator, tmp_path: Path
) -> None:
    daemon = Daemon(config(simulator, idle_timeout="2s"), directory=tmp_path)
    try:
        sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=30)
        with sock:
            # recv() returns b"" once the server has closed the connection (and would time out
            # with waitress's 120 s default).
            assert sock.recv(1) == b""
    finally:
        daemon.stop()


def test_connection_limit_is_applied(simulator: Simulator, tmp_path: Path) -> None:
    # With room for 5 connections, 5 idle sockets make a sixth client wait (the server stops
    # accepting); once they go, it is served. Proves the setting reaches the HTTP server.
    daemon = Daemon(config(simulator, connection_limit=5, idle_timeout="60s"), directory=tmp_path)
    try:
        with HostileClients("127.0.0.1", daemon.port, "/am", idle=5, slow=0):
            wait_until(lambda: "connection limit" in daemon.log(), timeout=20)
            with pytest.raises(requests.Timeout):
                post(daemon, "Waits", timeout=2)
        wait_until(lambda: post(daemon, "Served", timeout=5).ok, timeout=30)
    finally:
        daemon.stop()


# -- the descriptor budget (pure, with fake get/setrlimit) ----------------------------------------


class FakeLimits:
    def __init__(self, soft: int, hard: int, refuse: bool = False) -> None:
        self.soft, self.hard, self.refuse = soft, hard, refuse

    def get(self, _which: int) -> tuple[int, int]:
        return self.soft, self.hard

    def set(self, _which: int, limits: tuple[int, int]) -> None:
        if self.refuse:
            raise OSError("Operation not permitted")
        self.soft, self.hard = limits


R = fdlimit.RESERVED


@pytest.mark.parametrize(
    ("soft", "hard", "refuse", "limit", "files", "expect_limit", "expect_soft", "error"),
    [
        (1024, 524288, False, 4096, 0, 4096, 4096 + R, None),  # raised to fit
        (1024, 524288, False, 4096, 300, 4096, 4396 + R, None),  # tailed files counted
        (65536, 65536, False, 4096, 0, 4096, 65536, None),  # already enough: untouched
        (1024, 2048, False, 4096, 0, 2048 - R, 2048, "the hard limit is 2048"),  # capped
        (1024, 524288, True, 4096, 0, 1024 - R, 1024, "setrlimit failed"),  # refused
        (100, 200, False, 4096, 0, 1, 200, "the hard limit is 200"),  # never below 1
    ],
)
def test_descriptor_budget(
    soft: int,
    hard: int,
    refuse: bool,
    limit: int,
    files: int,
    expect_limit: int,
    expect_soft: int,
    error: str | None,
) -> None:
    fake = FakeLimits(soft, hard, refuse)
    budget = ensure_descriptors(limit, files, fake.get, fake.set)
    assert budget.connection_limit == expect_limit
    assert budget.soft == expect_soft == fake.soft
    assert (budget.error is None) == (error is None)
    if error:
        assert budget.error is not None and error in budget.error
    assert (budget.raised_from is not None) == (expect_soft != soft)
