"""Log output: the text, journald and JSON formats, the key=value fields surviving into JSON, and
secrets scrubbed in every format (unit), and the real daemon logging JSON lines (end to end)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bridge.logs import REDACTOR, fmt_fields, setup, split_fields
from tests.harness import Daemon, Process, Simulator, am_alert_payload, free_port, wait_until

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


# Every line about a message (queued, delivered, retried, given up, sent with a fallback body)
# names its rule, target and id, so `grep <id>` follows a message through its life.
MESSAGE_LINES = {
    "queued",
    "delivered",
    "delivery retry",
    "dead letter",
    "template failed, sent fallback",
}


def test_every_line_about_a_message_names_its_rule_target_and_id(tmp_path: Path) -> None:
    tokens = ("tok-ok", "tok-flaky", "tok-dead", "tok-slow")
    sim = Simulator(spec={"robots": {t: {"rate_per_minute": 0} for t in tokens}})
    sim.control(
        "faults",
        {"path": "/robot/send", "token": "tok-flaky", "count": 1, "action": {"errcode": -1}},
    )  # busy once: retried
    sim.control(
        "faults",
        {"path": "/robot/send", "token": "tok-dead", "count": 1, "action": {"errcode": 310000}},
    )  # refused for good: a dead letter

    def robot(token: str, **extra: Any) -> dict[str, Any]:
        return {
            "type": "robot",
            "webhook": sim.robot_url(token),
            "rate_limit": {"messages": 0},
            "retry": {"initial": "100ms"},
            **extra,
        }

    def rule(case: str, target: str, **extra: Any) -> dict[str, Any]:
        return {"name": case, "match": {"case": case}, "targets": [target], **extra}

    config = {
        "targets": {
            "ok": robot("tok-ok"),
            "flaky": robot("tok-flaky"),
            "dead": robot("tok-dead"),
            # One call per 2 s, and a backlog over 1 is merged: a digest.
            "slow": robot("tok-slow", rate_limit={"messages": 1, "per": "2s"}, digest={"after": 1}),
        },
        "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
        "rules": [
            rule("plain", "ok"),
            rule("broken", "ok", template="owner: {{ labels.owner }}"),
            rule("grouped", "ok", group_by=["case"], group_wait="200ms"),
            rule("flaky", "flaky"),
            rule("dead", "dead"),
            rule("storm", "slow"),
        ],
    }
    daemon = Daemon(
        config, directory=tmp_path, args=["--log-format", "json", "--log-level", "debug"]
    )
    try:
        for case in ("plain", "broken", "grouped", "flaky", "dead"):
            assert daemon.post("/am", am_alert_payload(f"A-{case}", case=case)).ok
        assert daemon.post("/am", am_alert_payload("Storm0", case="storm")).ok
        wait_until(lambda: sim.messages(token="tok-slow"))
        for n in range(1, 5):
            assert daemon.post("/am", am_alert_payload(f"Storm{n}", case="storm")).ok
        wait_until(lambda: len(sim.messages(token="tok-slow")) == 2, timeout=15)
        wait_until(lambda: '"msg": "dead letter"' in daemon.log())
        wait_until(lambda: len(sim.messages(token="tok-flaky")) == 1)
    finally:
        daemon.stop()
        sim.stop()
    lines = [json.loads(line) for line in daemon.log().splitlines() if line.startswith("{")]
    about = [line for line in lines if line["msg"] in MESSAGE_LINES]
    assert {line["msg"] for line in about} == MESSAGE_LINES  # each kind happened
    for line in about:
        assert line.get("rule") and line.get("target") and line.get("id"), line
    queued = {line["id"]: line for line in about if line["msg"] == "queued"}
    # The grouped alert's message was queued by the group flush, and named its rule.
    assert any(q["rule"] == "grouped" and q.get("group") for q in queued.values())
    # Each delivered single message was queued before, under the same rule and target.
    for line in about:
        if line["msg"] == "delivered" and "+" not in line["id"]:
            first = queued[line["id"]]
            assert (first["rule"], first["target"]) == (line["rule"], line["target"])
    [digest] = [line for line in about if line["msg"] == "delivered" and line.get("digest")]
    assert digest["rule"] == "storm" and digest["target"] == "slow"
    assert digest["id"].endswith("+3") and digest["digest"] == "4"
    [dead] = [line for line in about if line["msg"] == "dead letter"]
    assert (dead["rule"], dead["target"], dead["errcode"]) == ("dead", "dead", "310000")


# -- control characters: a value cannot forge a log line ---------------------------------------

FORGED = "2026-12-01 08:00:00,000 ERROR bridge.app: FORGED line"
HOSTILE_VALUES = [
    f"a\n{FORGED}",
    f"a\r{FORGED}",
    f"a\r\n{FORGED}",
    f"a\u2028{FORGED}",
    f"a\u0085{FORGED}",
    "bell\x07 escape\x1b[31m nul\x00 del\x7f",
    'quote" back\\slash \\n literal',
]


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_a_field_with_control_characters_stays_on_one_line(value: str) -> None:
    line = fmt_fields("no rule matched", labels=value, n=value)
    assert len(line.splitlines()) == 1
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in line)
    # ... and still reads back exactly, for the JSON format.
    assert split_fields(line) == ("no rule matched", {"labels": value, "n": value})


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_any_log_message_stays_one_line_in_every_format(
    captured: tuple[io.StringIO, logging.Logger], fmt: str
) -> None:
    stream, log = captured
    setup("debug", stream=stream, fmt=fmt)
    for value in HOSTILE_VALUES:
        log.info(f"an f-string with {value}")  # not through fmt_fields: the filter escapes it
        log.info(fmt_fields("event", labels=value))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 * len(HOSTILE_VALUES)
    assert not any(line.startswith("2026-12-01 08:00:00") for line in lines)
    if fmt == "json":
        decoded = [json.loads(line) for line in lines]
        assert [d["labels"] for d in decoded[1::2]] == HOSTILE_VALUES


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_daemon_log_cannot_be_forged_by_a_label_name(tmp_path: Path, fmt: str) -> None:
    # "no rule matched" logs every label of an alert no rule takes: the attacker's label
    # carries a newline followed by a line that looks like the daemon's own.
    config = {
        "targets": {
            "ops": {"type": "robot", "webhook": "http://127.0.0.1:9/robot/send?access_token=t"}
        },
        "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
        "rules": [{"name": "only-db", "match": {"team": "db"}, "targets": ["ops"]}],
    }
    daemon = Daemon(config, directory=tmp_path, args=["--log-format", fmt])
    try:
        payload = am_alert_payload("Forge")
        labels = payload["alerts"][0]["labels"]
        labels[f"evil\n{FORGED}"] = "name"  # (the input may drop a name that is not a label's)
        labels["evil"] = f"v\r\n{FORGED}\u2028{FORGED}"
        payload["commonLabels"] = dict(labels)
        assert daemon.post("/am", payload).ok
        wait_until(lambda: "no rule matched" in daemon.log(), timeout=20)
    finally:
        daemon.stop()
    log = daemon.log()
    assert "FORGED" in log, log  # the hostile label was logged...
    lines = log.splitlines()
    assert not [line for line in lines if "FORGED" in line and "no rule matched" not in line]
    assert not any(line.startswith("2026-12-01 08:00:00") for line in lines)
    if fmt == "json":
        for line in lines:
            if line.startswith("{"):
                json.loads(line)
        matched = [json.loads(x) for x in lines if "no rule matched" in x]
        assert f"evil=v\r\n{FORGED}\u2028{FORGED}" in matched[0]["labels"]
