"""End to end, rendering: a real daemon receives a 300-alert Alertmanager notification and the
DingTalk simulator shows every one of the 300 instances across numbered parts; a hostile template
is cut off by its bounds, the plain fallback goes out (logged with reason `template`), and SIGTERM
stops the daemon promptly even while such a render runs."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import Daemon, Simulator, wait_until
from tests.test_render_groups import HOSTS, big_notification

WAIT = 30.0
TOKEN = "tok-plain"


def _config(simulator: Simulator, rule: dict[str, Any]) -> dict[str, Any]:
    return {
        "targets": {"ops": {"type": "robot", "webhook": simulator.robot_url(TOKEN)}},
        "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
        "rules": [{"name": "page", "targets": ["ops"], **rule}],
    }


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.stop()


@pytest.mark.parametrize("msgtype", ["markdown", "text"])
def test_300_alerts_reach_the_chat_in_numbered_parts(
    simulator: Simulator, daemons: list[Daemon], msgtype: str
) -> None:
    daemon = Daemon(_config(simulator, {"msgtype": msgtype}))
    daemons.append(daemon)
    response = daemon.post("/am", big_notification())
    assert response.status_code == 200, response.text

    def all_parts() -> list[dict[str, Any]] | None:
        messages = simulator.messages(token=TOKEN)
        return messages if messages and len(messages) >= _total(messages[0]) else None

    messages = wait_until(all_parts, timeout=WAIT)
    total = len(messages)
    assert total > 1, "300 alerts do not fit one message"
    texts = [m["text"] for m in messages]
    for index, text in enumerate(texts, start=1):
        if index > 1:
            assert text.startswith(f"({index}/{total}) [告警 ×{HOSTS}] DiskFull"), text[:80]
        if index < total:
            assert f"({index}/{total}, continued in part {index + 1})" in text
        if msgtype == "markdown":
            assert messages[index - 1]["title"].endswith(f"({index}/{total})")
    for i in range(1, HOSTS + 1):
        host = f"host-{i:03d}:9100"
        assert sum(host in t for t in texts) == 1, f"{host} not shown exactly once"


def _total(first: dict[str, Any]) -> int:
    """How many parts the first part announces ("(1/3, continued in part 2)")."""
    found = re.search(r"\(1/(\d+), continued in part 2\)", first["text"])
    return int(found.group(1)) if found else 1


HOSTILE = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


def test_hostile_template_is_cut_off_and_the_fallback_goes_out(
    simulator: Simulator, daemons: list[Daemon]
) -> None:
    daemon = Daemon(_config(simulator, {"template": HOSTILE}))
    daemons.append(daemon)
    payload = big_notification(3)
    assert daemon.post("/am", payload).status_code == 200
    [message] = simulator.wait_messages(1, timeout=WAIT, token=TOKEN)
    assert "plain fallback" in message["text"]
    for i in range(1, 4):
        assert f"instance=host-{i:03d}:9100" in message["text"]
    log = wait_until(lambda: "reason=template" in daemon.log() and daemon.log(), timeout=WAIT)
    assert "time limit" in log


def test_sigterm_stops_the_daemon_during_a_hostile_render(
    simulator: Simulator, daemons: list[Daemon]
) -> None:
    """The daemon waits up to `shutdown_timeout` for a sender to finish its message: with the
    render unbounded, a sender stuck in a hostile template held the daemon that long (here a
    minute, past the 30 s this test waits); bounded, the render ends within a second."""
    config = _config(simulator, {"template": HOSTILE})
    config["server"] = {"shutdown_timeout": "60s"}
    daemon = Daemon(config)
    daemons.append(daemon)
    assert daemon.post("/am", big_notification(2)).status_code == 200
    time.sleep(0.3)  # the sender has taken the message and renders it (that takes a second)
    daemon.signal(signal.SIGTERM)
    assert daemon.proc.wait(WAIT) == 0, daemon.log()  # a hang guard, not a timing
