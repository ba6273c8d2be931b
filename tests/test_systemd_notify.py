"""The daemon speaks systemd's notify protocol: the exact sequence for start, reload and stop on a
$NOTIFY_SOCKET the test listens on, and watchdog pings when $WATCHDOG_USEC asks for them."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Daemon, Simulator, wait_until


class NotifySocket:
    """A datagram socket like systemd's, collecting every notification."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def states(self) -> list[str]:
        """The messages without pings, each as its first field (READY=1, RELOADING=1, ...)."""
        return [m.split("\n")[0] for m in self.messages if m != "WATCHDOG=1"]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    listener = NotifySocket(tmp_path / "notify.sock")
    yield listener
    listener.close()


def config(simulator: Simulator) -> dict[str, object]:
    return {
        "targets": {"ops": {"type": "robot", "webhook": simulator.robot_url("tok-plain")}},
        "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
        "rules": [{"name": "all", "targets": ["ops"]}],
    }


def test_start_reload_stop_sequence(
    simulator: Simulator, notify: NotifySocket, tmp_path: Path
) -> None:
    daemon = Daemon(config(simulator), env={"NOTIFY_SOCKET": str(notify.path)}, directory=tmp_path)
    try:
        wait_until(lambda: notify.states() == ["READY=1"])
        assert notify.messages[0].startswith("READY=1\nSTATUS=serving on 127.0.0.1:")
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: len(notify.states()) == 3)
        reloading = notify.messages[1].split("\n")
        assert reloading[0] == "RELOADING=1"
        assert reloading[1].startswith("MONOTONIC_USEC=")
        usec = int(reloading[1].split("=")[1])
        assert abs(usec / 1e6 - time.monotonic()) < 60  # CLOCK_MONOTONIC, as systemd reads it
        assert notify.messages[2].startswith("READY=1\nSTATUS=config ")
        assert "reload unchanged" in notify.messages[2]
    finally:
        assert daemon.stop() == 0
    assert notify.states() == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]


def test_watchdog_pings_at_half_the_period(
    simulator: Simulator, notify: NotifySocket, tmp_path: Path
) -> None:
    daemon = Daemon(
        config(simulator),
        env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"},
        directory=tmp_path,
    )
    try:
        wait_until(lambda: notify.messages.count("WATCHDOG=1") >= 5, timeout=10)
    finally:
        daemon.stop()


def test_no_watchdog_pings_unless_asked(
    simulator: Simulator, notify: NotifySocket, tmp_path: Path
) -> None:
    daemon = Daemon(config(simulator), env={"NOTIFY_SOCKET": str(notify.path)}, directory=tmp_path)
    try:
        wait_until(lambda: notify.states() == ["READY=1"])
        time.sleep(1.5)  # three ticks of the main loop: a ping would have been sent by now
        assert "WATCHDOG=1" not in notify.messages
    finally:
        daemon.stop()
