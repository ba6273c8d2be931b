"""An empty token never switches authentication off by accident (real daemon).

`token: "${AM_TOKEN:-}"` with the variable unset, an empty token file or `reload_token: ""`
used to mean "no authentication". Now the daemon refuses to start on it, a reload that would
empty a token is refused and the running token stays in force, and an operator who wants an
open endpoint says so: `token: none`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from tests.harness import Daemon, Process, Simulator, am_alert_payload, free_port, wait_until


def config(sim: Simulator, token: str, reload_token: str = "reload-secret-1") -> dict[str, Any]:
    return {
        "server": {"reload_token": reload_token},
        "targets": {"ops": {"type": "robot", "webhook": sim.robot_url("tok-plain")}},
        "inputs": {"am": {"type": "alertmanager", "path": "/am", "token": token}},
        "rules": [{"name": "all", "targets": ["ops"]}],
    }


def test_the_daemon_does_not_start_with_an_empty_token(
    simulator: Simulator, tmp_path: Path
) -> None:
    import yaml

    path = tmp_path / "config.yaml"
    cfg = config(simulator, "${BRIDGE_TEST_AM_TOKEN:-}")
    cfg["server"]["listen"] = f"127.0.0.1:{free_port()}"
    cfg["state_dir"] = str(tmp_path / "state")
    path.write_text(yaml.safe_dump(cfg), "utf-8")
    daemon = Process(["run", "-c", str(path)])
    assert daemon.proc.wait(30) == 1
    assert "inputs.am.token: token is empty" in daemon.log()
    assert "Traceback" not in daemon.log()


def test_a_reload_that_would_empty_the_token_keeps_the_old_one(
    simulator: Simulator, tmp_path: Path
) -> None:
    import yaml

    daemon = Daemon(config(simulator, "am-secret-1"), directory=tmp_path)
    try:
        assert daemon.post("/am", am_alert_payload("NoToken")).status_code == 401
        text = daemon.config_path.read_text("utf-8").replace("am-secret-1", '""')
        daemon.config_path.write_text(text, "utf-8")
        answer = daemon.post("/-/reload", {}, token="reload-secret-1")
        assert answer.status_code == 422
        assert any("token is empty" in p for p in answer.json()["problems"]), answer.text
        # Still guarded, by the old token.
        assert daemon.post("/am", am_alert_payload("NoToken")).status_code == 401
        assert daemon.post("/am", am_alert_payload("Token"), token="am-secret-1").ok

        # Saying so explicitly opens the endpoint.
        cfg = yaml.safe_load(text)
        cfg["inputs"]["am"]["token"] = "none"
        daemon.config_path.write_text(yaml.safe_dump(cfg), "utf-8")
        answer = daemon.post("/-/reload", {}, token="reload-secret-1")
        assert answer.status_code == 200, answer.text
        wait_until(lambda: daemon.post("/am", am_alert_payload("Open")).ok, timeout=20)
    finally:
        daemon.stop()


def test_reload_token_none_leaves_reload_open(simulator: Simulator, tmp_path: Path) -> None:
    daemon = Daemon(config(simulator, "none", reload_token="none"), directory=tmp_path)
    try:
        assert daemon.post("/am", am_alert_payload("Open")).ok
        answer = requests.post(f"{daemon.url}/-/reload", timeout=10)
        assert answer.status_code == 200, answer.text
    finally:
        daemon.stop()
