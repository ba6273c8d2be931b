"""The node id (`state: {node_id}`): the host name unless configured, settable from the
environment like any value, in the published schema with the limits the code documents, and
shown by `check`. (Refusals: tests/configs/bad/state_node_id_*.yaml.)"""

from __future__ import annotations

import socket
from pathlib import Path

import requests

from bridge.config import nodeid
from bridge.config.schema import schema
from tests.harness import Daemon, Simulator, bridge_cli, compile_yaml, quick_robot_config

BASE = """
targets:
  ops: {type: robot, webhook: "http://127.0.0.1:9/robot/send?access_token=t"}
inputs:
  am: {type: alertmanager, path: /am}
rules:
  - {name: all, targets: [ops]}
"""


def test_the_node_id_is_the_host_name_unless_configured(tmp_path: Path) -> None:
    config = compile_yaml(tmp_path, BASE)
    assert (config.node_id, config.node_id_configured) == (socket.gethostname(), False)
    config = compile_yaml(tmp_path, BASE + "state: {node_id: web-1}\n")
    assert (config.node_id, config.node_id_configured) == ("web-1", True)
    assert config.state_url is None  # a node id alone keeps the state in SQLite


def test_the_node_id_can_come_from_the_environment(tmp_path: Path) -> None:
    text = BASE + 'state: {node_id: "${POD_NAME}"}\n'
    config = compile_yaml(tmp_path, text, environ={"POD_NAME": "bridge-7d9f-x2x"})
    assert config.node_id == "bridge-7d9f-x2x"


def test_the_schema_bounds_the_node_id_as_the_code_says() -> None:
    node_id = schema()["properties"]["state"]["properties"]["node_id"]
    assert node_id["maxLength"] == nodeid.MAX_LENGTH
    assert node_id["minLength"] == 1


def test_check_shows_a_configured_node_id(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(BASE + f"state_dir: {tmp_path / 'state'}\nstate: {{node_id: web-1}}\n")
    result = bridge_cli("check", "-c", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{path}: OK: ")
    assert lines[1:] == [
        f"{path}: node id web-1 (state.node_id): the file inputs' offsets are kept under it"
    ]


def test_a_reload_keeps_the_node_id_until_a_restart(sim: Simulator, tmp_path: Path) -> None:
    """The offsets of the running file inputs are the node's: a new node_id applies at the next
    start, and the reload says so."""
    cfg = quick_robot_config(sim, state={"node_id": "web-1"})
    daemon = Daemon(cfg, directory=tmp_path)
    try:
        text = daemon.config_path.read_text("utf-8").replace("node_id: web-1", "node_id: web-2")
        daemon.config_path.write_text(text, "utf-8")
        answer = requests.post(f"{daemon.url}/-/reload", timeout=10).json()
        assert answer["result"] == "success" and answer["needs_restart"] == ["state"], answer
        assert requests.get(f"{daemon.url}/-/ready", timeout=10).json()["node"] == "web-1"
    finally:
        daemon.stop()
