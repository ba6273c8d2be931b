"""Log output: the text, journald and JSON formats, the key=value fields surviving into JSON, and
secrets scrubbed in every format (unit), and the real daemon logging JSON lines (end to end)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bridge.logs import REDACTOR, fmt_fields, setup, split_fields
from tests.harness import Process, Simulator, am_alert_payload, free_port, wait_until

FIELD_CASES = [
    {"rule": "critical", "target": "ops", "id": "3f2a"},
    {"error": 'said "no" twice', "path": "/var/log/a b.log"},
    {"reason": "", "n": "0"},
    {"labels": "a=1,b=2"},
]


@pytest.mark.parametrize("fields", FIELD_CASES)
def test_fields_survive_the_round_trip(fields: dict[str, str]) -> None:
    assert split_fields(fmt_fields("something happened", **fields)) == (
        "something happened",
        fields,
    )


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    yield stream, logging.getLogger("bridge.test")
    root.handlers[:], root.level = saved[0], saved[1]
    REDACTOR.set_secrets([])


def test_json_lines_carry_the_fields_and_no_secret(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, log = captured
    setup("info", stream=stream, fmt="json", environ={})
    REDACTOR.set_secrets(["SECvery-secret-value"])
    log.info(
        fmt_fields("delivered", rule="r1", target="ops", id="abc", note="SECvery-secret-value")
    )
    log.warning("plain text")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["msg"] == "delivered" and first["level"] == "info"
    assert (first["rule"], first["target"], first["id"], first["note"]) == (
        "r1",
        "ops",
        "abc",
        "***",
    )
    assert first["logger"] == "bridge.test" and first["time"][:2] == "20"
    assert second == {**second, "msg": "plain text", "level": "warning"}


def test_under_systemd_lines_have_a_priority_and_no_timestamp(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, log = captured
    setup("debug", stream=stream, environ={"JOURNAL_STREAM": "8:1234"})
    log.error("broken")
    log.info("fine")
    assert stream.getvalue().splitlines() == [
        "<3>ERROR bridge.test: broken",
        "<6>INFO bridge.test: fine",
    ]


def test_the_daemon_logs_json_lines(simulator: Simulator, tmp_path: Path) -> None:
    directory = tmp_path
    port = free_port()
    config = directory / "config.yaml"
    config.write_text(
        f"""
state_dir: {directory / "state"}
server: {{listen: "127.0.0.1:{port}"}}
targets:
  ops: {{type: robot, webhook: "{simulator.robot_url("tok-plain")}"}}
inputs:
  am: {{type: alertmanager, path: /am}}
rules:
  - {{name: all, targets: [ops]}}
""",
        "utf-8",
    )
    daemon = Process(["run", "-c", str(config), "--log-format", "json"])
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return requests.get(f"{url}/-/healthy", timeout=1).ok
            except requests.ConnectionError:
                return False

        wait_until(up, timeout=15)
        requests.post(f"{url}/am", json=am_alert_payload("JsonLog"), timeout=5)
        wait_until(lambda: '"msg": "delivered"' in daemon.log())
    finally:
        daemon.stop()
    lines = [json.loads(line) for line in daemon.log().splitlines() if line.strip()]
    delivered = [line for line in lines if line["msg"] == "delivered"]
    assert delivered and delivered[0]["rule"] == "all" and delivered[0]["target"] == "ops"
    assert delivered[0]["id"]
    assert lines[-1]["msg"] == "stopped"
