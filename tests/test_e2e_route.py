"""End to end, `route` beside a running daemon: it reads the state the daemon writes (read-only,
while the daemon runs) and agrees with what the daemon then does: an alert the chat was told
about is "not sent again" until its repeat interval ends, and the daemon indeed sends nothing for
it; another alert would go out, and does; a silence made with the CLI is named."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import Daemon, Simulator, bridge_cli, wait_until

TOKEN = "tok-plain"


@pytest.fixture
def daemon(simulator: Simulator) -> Iterator[Daemon]:
    config = {
        "targets": {"ops": {"type": "robot", "webhook": simulator.robot_url(TOKEN)}},
        "inputs": {
            "hook": {
                "type": "webhook",
                "path": "/hook",
                "labels": {"alertname": "{{ body.alertname }}", "app": "{{ body.app }}"},
            }
        },
        "rules": [{"name": "hooks", "targets": ["ops"], "repeat_interval": "1h"}],
    }
    started = Daemon(config)
    yield started
    started.stop()


def route(daemon: Daemon, labels: str) -> tuple[int, str]:
    result = bridge_cli(
        "route", "-c", str(daemon.config_path), "--input", "hook", "--labels", labels
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, result.stdout


def told(simulator: Simulator, alertname: str) -> int:
    return sum(alertname in m["text"] for m in simulator.messages(token=TOKEN))


def test_route_reads_the_running_daemons_state_and_agrees_with_it(
    simulator: Simulator, daemon: Daemon
) -> None:
    code, out = route(daemon, "alertname=DiskFull,app=pay")
    assert code == 0 and "rule hooks: queued (first) for ops" in out

    assert daemon.post("/hook", {"alertname": "DiskFull", "app": "pay"}).status_code == 200
    wait_until(lambda: told(simulator, "DiskFull") == 1, timeout=30)
    code, out = route(daemon, "alertname=DiskFull,app=pay")
    assert code == 1, out
    assert "rule hooks: not sent again until " in out and "(repeat_interval); last told " in out
    assert f"state: {daemon.dir / 'state'} (read only)" in out
    # The daemon agrees: the same alert again is not sent (it says so in its answer).
    again = daemon.post("/hook", {"alertname": "DiskFull", "app": "pay"})
    assert again.status_code == 200
    assert (again.json()["messages"], again.json()["not_sent_again_yet"]) == (0, 1)
    # Another alert, that route says would go out, does.
    code, out = route(daemon, "alertname=CpuHigh,app=pay")
    assert code == 0 and "targets that get a message: ops" in out
    assert daemon.post("/hook", {"alertname": "CpuHigh", "app": "pay"}).json()["messages"] == 1
    wait_until(lambda: told(simulator, "CpuHigh") == 1, timeout=30)

    added = bridge_cli("silence", "add", "-c", str(daemon.config_path), "--match", "app=pay")
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.split()[1]
    code, out = route(daemon, "alertname=MemoryLow,app=pay")
    assert code == 1 and f'silenced by {silence_id} (app="pay", runtime, until ' in out
