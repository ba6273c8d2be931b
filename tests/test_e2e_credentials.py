"""Secrets through systemd's LoadCredential=: systemd copies each credential into a private
directory and names it in $CREDENTIALS_DIRECTORY; the config reads them with `*_file` and
`${CREDENTIALS_DIRECTORY}`. The daemon here gets that variable as systemd would set it."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import requests

from tests.harness import Daemon, Simulator, am_alert_payload, bridge_cli, wait_until

SECRET = "SECtest-signing-secret"  # the simulator's tok-signed robot checks signatures with it

CONFIG = """\
state_dir: {state}
server: {{listen: "127.0.0.1:{{port}}"}}
targets:
  ops:
    type: robot
    webhook_file: "${{CREDENTIALS_DIRECTORY}}/ops-webhook"
    secret_file: "${{CREDENTIALS_DIRECTORY}}/ops-secret"
    keywords: [告警]
inputs:
  am: {{type: alertmanager, path: /am}}
rules:
  - {{name: all, targets: [ops]}}
"""


def credentials(directory: Path, webhook: str) -> Path:
    """What LoadCredential=ops-secret:… and ops-webhook:… leave: read-only files, one each."""
    creds = directory / "credentials"
    creds.mkdir()
    for name, text in (("ops-secret", SECRET + "\n"), ("ops-webhook", webhook + "\n")):
        (creds / name).write_text(text, "utf-8")
        (creds / name).chmod(0o400)
    creds.chmod(0o500)
    return creds


def test_secrets_come_from_the_credentials_directory(simulator: Simulator, tmp_path: Path) -> None:
    creds = credentials(tmp_path, simulator.robot_url("tok-signed"))
    config = CONFIG.format(state=tmp_path / "state")
    daemon = Daemon(config, env={"CREDENTIALS_DIRECTORY": str(creds)}, directory=tmp_path)
    try:
        assert daemon.post("/am", am_alert_payload("FromCredentials")).status_code == 200
        # The simulator checks the signature with the same secret: a wrong or missing one
        # would be refused with errcode 310000 and end as a dead letter.
        [message] = simulator.wait_messages(1, token="tok-signed")
        assert "FromCredentials" in message["body"]["markdown"]["text"]
        calls = [r for r in simulator.requests_seen() if r.get("token") == "tok-signed"]
        assert [r["errcode"] for r in calls] == [0]  # signed right the first time
        # A reload (ExecReload= sends SIGHUP) reads the files again, finds nothing changed, and
        # the bridge keeps signing with the same secret.
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: "reload skipped, nothing changed trigger=SIGHUP" in daemon.log())
        assert daemon.post("/am", am_alert_payload("AfterReload")).status_code == 200
        simulator.wait_messages(2, token="tok-signed")
        ready = requests.get(f"{daemon.url}/-/ready", timeout=10).json()
        assert ready["status"] == "ready"
    finally:
        daemon.stop()
    assert SECRET not in daemon.log()
    assert "tok-signed" not in daemon.log()


def test_check_without_the_variable_names_it_and_says_where_it_comes_from(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(state=tmp_path / "state").replace("{port}", "18999"), "utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    result = bridge_cli("check", "-c", str(path), env=env)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert f"{path}:6" in out  # webhook_file's line
    assert f"{path}:7" in out  # secret_file's line
    assert "environment variable CREDENTIALS_DIRECTORY is not set" in out
    assert "LoadCredential=" in out


def test_a_rotated_secret_file_takes_effect_on_reload(simulator: Simulator, tmp_path: Path) -> None:
    creds = credentials(tmp_path, simulator.robot_url("tok-signed"))
    creds.chmod(0o700)
    secret = creds / "ops-secret"
    daemon = Daemon(
        CONFIG.format(state=tmp_path / "state"),
        env={"CREDENTIALS_DIRECTORY": str(creds)},
        directory=tmp_path,
    )

    def ready() -> dict[str, Any]:
        body: dict[str, Any] = requests.get(f"{daemon.url}/-/ready", timeout=10).json()
        return body

    try:
        before = ready()["config"]["hash"]
        # Only the secret changes (a wrong one, so the effect shows): the config text does not.
        secret.chmod(0o600)
        secret.write_text("SECsomething-else\n", "utf-8")
        wait_until(lambda: ready()["config"]["hash"] != before, timeout=15)
        assert ready()["config"]["last_reload"]["result"] == "success"
        assert daemon.post("/am", am_alert_payload("WrongSecret")).status_code == 200
        wait_until(
            lambda: (
                [r["errcode"] for r in simulator.requests_seen() if r.get("token") == "tok-signed"]
                == [310000]
            ),
            timeout=15,
        )
    finally:
        daemon.stop()
    assert "SECsomething-else" not in daemon.log()
