"""The command line as an operator uses it: render, send-test, --version."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from bridge import __version__
from tests.harness import FIXTURES, Simulator, bridge_cli


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return bridge_cli(*args)


def write_config(
    tmp_path: Path,
    sim_url: str,
    secret: str = "SECtest-signing-secret",
    robot: dict[str, Any] | None = None,
) -> Path:
    config: dict[str, Any] = {
        "state_dir": str(tmp_path / "state"),
        "targets": {
            "ops": {
                "type": "robot",
                "webhook": f"{sim_url}/robot/send?access_token=tok-signed",
                "secret": secret,
                "keywords": ["告警"],
                **(robot or {}),
            },
            "wn": {
                "type": "work_notice",
                "app_key": "app-key",
                "app_secret": "app-secret",
                "agent_id": 4242,
                "userids": ["u1"],
                "api_base": sim_url,
            },
        },
        "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
        "rules": [
            {
                "name": "all",
                "targets": ["ops", "wn"],
                "msgtype": "markdown",
                "mention": {"mobiles": ["13800000000"]},
            }
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), "utf-8")
    return path


def test_version() -> None:
    result = cli("--version")
    assert result.stdout.strip() == f"dingtalk-bridge {__version__}"


def test_render_prints_the_exact_bodies_without_sending(
    tmp_path: Path, simulator: Simulator
) -> None:
    config = write_config(tmp_path, simulator.url)
    payload = FIXTURES / "alertmanager" / "firing.json"
    result = cli("render", "-c", str(config), "--input", "am", "--payload", str(payload))
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.split("# rule ")[1:]
    assert [b.splitlines()[0] for b in blocks] == [
        "all -> target ops (robot)",
        "all -> target wn (work_notice)",
    ]
    robot = json.loads(blocks[0].split("\n", 1)[1])
    assert robot["msgtype"] == "markdown"
    assert "告警" in robot["markdown"]["text"] and "@13800000000" in robot["markdown"]["text"]
    notice = json.loads(blocks[1].split("\n", 1)[1])
    assert notice["agent_id"] == 4242 and notice["userid_list"] == "u1"
    assert simulator.messages() == []  # render never sends


def test_render_reports_a_payload_the_input_would_refuse(
    tmp_path: Path, simulator: Simulator
) -> None:
    config = write_config(tmp_path, simulator.url)
    bad = tmp_path / "bad.json"
    bad.write_text('{"status": "firing"}')
    result = cli("render", "-c", str(config), "--input", "am", "--payload", str(bad))
    assert result.returncode == 1
    assert 'would answer 400: missing "alerts"' in result.stderr


def test_send_test_reaches_each_kind_of_target(tmp_path: Path, simulator: Simulator) -> None:
    config = write_config(tmp_path, simulator.url)
    assert cli("send-test", "-c", str(config), "--target", "ops").returncode == 0
    result = cli("send-test", "-c", str(config), "--target", "wn")
    assert result.returncode == 0, result.stderr
    assert "task_id=" in result.stdout
    assert "received target=wn received=u1" in result.stdout  # what getsendresult said
    kinds = [m["kind"] for m in simulator.messages()]
    assert kinds == ["robot", "work_notice"]


def test_send_test_takes_turns_in_the_robots_window_and_never_passes_it(
    tmp_path: Path, simulator: Simulator
) -> None:
    """The window is the one the daemon keeps in the state store: a test that would be the call
    past the limit (DingTalk's 130101, a 10-minute lockout) is not sent."""
    config = write_config(tmp_path, simulator.url, robot={"rate_limit": {"messages": 2}})
    for _ in range(2):
        assert cli("send-test", "-c", str(config), "--target", "ops").returncode == 0
    result = cli("send-test", "-c", str(config), "--target", "ops")
    assert result.returncode == 1
    assert "reason=rate_limited" in result.stderr and "no room in its rate window" in result.stderr
    assert len(simulator.messages()) == 2
    assert simulator.stats()["requests"] == 2  # the third call was never made


def test_send_test_says_when_dingtalk_delivered_a_work_notice_to_nobody(tmp_path: Path) -> None:
    """asyncsend answers errcode 0 for an unknown user id: only getsendresult tells."""
    sim = Simulator(
        spec={"apps": {"app-key": {"app_secret": "app-secret", "agent_id": 4242, "users": ["u2"]}}}
    )
    try:
        config = write_config(tmp_path, sim.url)
        result = cli("send-test", "-c", str(config), "--target", "wn")
    finally:
        sim.stop()
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'nobody received it target=wn refused="u1 invalid_user"' in result.stdout


def test_send_test_explains_a_refusal_without_leaking_secrets(
    tmp_path: Path, simulator: Simulator
) -> None:
    config = write_config(tmp_path, simulator.url, secret="SECwrong-secret-value")
    result = cli("send-test", "-c", str(config), "--target", "ops")
    assert result.returncode == 1
    assert "reason=dingtalk_config" in result.stderr and "errcode=310000" in result.stderr
    assert "SECwrong-secret-value" not in result.stderr + result.stdout
    assert "tok-signed" not in result.stderr + result.stdout
