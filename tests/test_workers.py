"""`server.workers` in process: the worker's role from its environment, /metrics and /-/ready
added up over the siblings' snapshots (app/siblings.py, app/metrics.py), a worker other than
the first runs no file input (also after a reload), and a reload that changes `workers` keeps
the running number and says a restart applies it. The processes themselves:
test_e2e_workers.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from bridge.app.bridge import Bridge
from bridge.app.metrics import add_up, as_samples
from bridge.app.siblings import (
    STALE_AFTER,
    Part,
    WorkerRole,
    group_readiness,
    role_from_env,
)
from bridge.app.workers import Supervisor
from bridge.config.model import HttpInput
from bridge.inputs.alertmanager import parse_notification
from bridge.store.sqlite import SqliteStore
from tests.harness import compile_yaml, fixture_json

CONFIG = """
targets:
  ops: {type: robot, webhook: "http://127.0.0.1:9/robot/send?access_token=abc"}
inputs:
  am: {type: alertmanager, path: /am}
rules: [{name: all, targets: [ops]}]
"""
SECOND_TARGET = """  two: {type: robot, webhook: "http://127.0.0.1:9/robot/send?access_token=b"}
"""
FILE_INPUT = """
  app: {type: file, paths: ["%s"], patterns: [{regex: "ERROR"}]}
"""


@pytest.mark.parametrize(
    ("environ", "role"),
    [
        ({}, None),  # a process of its own
        ({"DINGTALK_BRIDGE_WORKER": "x/2"}, None),
        (
            {
                "DINGTALK_BRIDGE_WORKER": "1/2",
                "DINGTALK_BRIDGE_WORKER_DIR": "/run/g",
                "DINGTALK_BRIDGE_WORKER_PARENT": "7",
                "DINGTALK_BRIDGE_WORKER_FD": "3",
            },
            WorkerRole(1, 2, Path("/run/g"), 7, 3),
        ),
        (  # no inherited socket: it binds the address with SO_REUSEPORT
            {"DINGTALK_BRIDGE_WORKER": "0/4", "DINGTALK_BRIDGE_WORKER_DIR": "/run/g"},
            WorkerRole(0, 4, Path("/run/g"), 0, None),
        ),
        (  # server.background_worker: the last one, without the socket
            {
                "DINGTALK_BRIDGE_WORKER": "2/3",
                "DINGTALK_BRIDGE_WORKER_DIR": "/run/g",
                "DINGTALK_BRIDGE_WORKER_PART": "background",
            },
            WorkerRole(2, 3, Path("/run/g"), 0, None, "background"),
        ),
        (
            {
                "DINGTALK_BRIDGE_WORKER": "0/3",
                "DINGTALK_BRIDGE_WORKER_DIR": "/run/g",
                "DINGTALK_BRIDGE_WORKER_FD": "3",
                "DINGTALK_BRIDGE_WORKER_PART": "http",
            },
            WorkerRole(0, 3, Path("/run/g"), 0, 3, "http"),
        ),
        (  # a part it does not know: a whole bridge, as before there were parts
            {
                "DINGTALK_BRIDGE_WORKER": "0/2",
                "DINGTALK_BRIDGE_WORKER_DIR": "/run/g",
                "DINGTALK_BRIDGE_WORKER_PART": "everything",
            },
            WorkerRole(0, 2, Path("/run/g"), 0, None),
        ),
    ],
)
def test_a_worker_knows_its_place_from_its_environment(
    environ: dict[str, str], role: WorkerRole | None
) -> None:
    assert role_from_env(environ) == role


def test_only_worker_0_reads_files() -> None:
    assert [WorkerRole(i, 3, Path("/g"), 1, None).reads_files for i in range(3)] == [
        True,
        False,
        False,
    ]


@pytest.mark.parametrize(
    ("index", "part", "serves_http", "sends", "reads_files"),
    [
        (0, "whole", True, True, True),
        (1, "whole", True, True, False),
        # With a background worker the HTTP workers only serve, and it does all the rest.
        (0, "http", True, False, False),
        (1, "http", True, False, False),
        (2, "background", False, True, True),
    ],
)
def test_what_each_part_of_a_group_runs(
    index: int, part: Part, serves_http: bool, sends: bool, reads_files: bool
) -> None:
    role = WorkerRole(index, 3, Path("/g"), 1, None, part)
    assert (role.serves_http, role.sends, role.reads_files) == (serves_http, sends, reads_files)


def test_the_supervisor_gives_the_socket_to_the_http_workers_only(tmp_path: Path) -> None:
    config = compile_yaml(
        tmp_path, "server: {listen: '127.0.0.1:0', workers: 2, background_worker: true}\n" + CONFIG
    )
    supervisor = Supervisor(config, [])
    try:
        assert supervisor.sock is not None and supervisor.count == 3
        roles = [role_from_env(supervisor._env(index)) for index in range(3)]
        fd = supervisor.sock.fileno()
        assert [(r.part, r.socket_fd) for r in roles if r is not None] == [
            ("http", fd),
            ("http", fd),
            ("background", None),
        ]
    finally:
        if supervisor.sock is not None:
            supervisor.sock.close()
        supervisor.group_dir.rmdir()


def family(name: str, counts: dict[str, float]) -> Metric:
    counter = CounterMetricFamily(name, "text", labels=["target"])
    for target, value in counts.items():
        counter.add_metric([target], value)
    return counter


def values(families: list[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def test_counters_add_up_sample_by_sample_over_the_siblings() -> None:
    own = [family("sent", {"ops": 3, "team": 1})]
    siblings = [
        as_samples([family("sent", {"ops": 4})]),
        as_samples([family("sent", {"files": 2}), family("only_theirs", {"ops": 9})]),
    ]
    merged = list(add_up(own, siblings))
    assert [f.name for f in merged] == ["sent"]  # a family only a sibling has is left out
    assert values(merged) == {
        ("sent_total", (("target", "ops"),)): 7,
        ("sent_total", (("target", "team"),)): 1,
        ("sent_total", (("target", "files"),)): 2,  # a series only a sibling has
    }


def test_one_process_alone_keeps_its_own_numbers() -> None:
    gauge = GaugeMetricFamily("up", "text", labels=["input"])
    gauge.add_metric(["app"], 1)
    own = [family("sent", {"ops": 3}), gauge]
    assert values(list(add_up(own, []))) == values(own)


def readiness(problems: list[str], files: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    details = {"problems": problems, "warnings": [], "replica": "h:1:a", "files": files}
    return not problems, details


def snapshot(at: float, problems: list[str], files: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": at,
        "pid": 42,
        "replica": "h:42:b",
        "ready": not problems,
        "problems": problems,
        "warnings": [],
        "files": files,
        "events_received": 5,
        "config": "abc",
        "metrics": [],
    }


ROLE = WorkerRole(1, 3, Path("/g"), 1, None)
COUNTS = {"events_received": 2, "config": "abc"}


def test_the_group_is_ready_when_every_reporting_worker_is() -> None:
    now = time.time()
    others = {0: snapshot(now, [], {"app": {"state": "running"}}), 2: None}
    ready, details = group_readiness(ROLE, readiness([], {}), others, COUNTS)
    assert ready
    assert details["files"] == {"app": {"state": "running"}}  # worker 0's, shown by worker 1
    assert details["workers"]["0"]["events_received"] == 5
    assert details["workers"]["1"] == {
        "pid": details["workers"]["1"]["pid"],
        "replica": "h:1:a",
        "ready": True,
        "answering": True,
        **COUNTS,
    }
    # Worker 2 has not reported (restarting): a warning, the others still serve.
    assert details["workers"]["2"] == {"ready": False, "reporting": False}
    assert details["warnings"] == [f"worker 2 has not reported for {STALE_AFTER:g}s (restarting?)"]


def test_a_siblings_problem_is_the_groups_and_a_stale_snapshot_counts_for_nothing() -> None:
    now = time.time()
    others: dict[int, dict[str, Any] | None] = {
        0: snapshot(now, ["file input app is failing"], {}),
        2: snapshot(now - STALE_AFTER - 1, ["old news"], {}),
    }
    ready, details = group_readiness(ROLE, readiness([], {}), others, COUNTS)
    assert not ready
    assert details["problems"] == ["worker 0: file input app is failing"]
    assert details["workers"]["2"]["reporting"] is False


def test_an_http_worker_shows_the_background_workers_senders() -> None:
    """/-/ready answered by an HTTP worker (no sender of its own: `sender_running` None) shows
    the senders of the background worker, from its snapshot."""
    now = time.time()
    queue = {"pending": 3, "claimed": 1}
    own = readiness([], {})
    own[1]["queues"] = {"ops": {**queue, "sender_running": None}}
    own[1]["store"] = {"writable": True, "dead_letters": 0, "wakeups": "in-process"}
    background = {
        **snapshot(now, [], {}),
        "part": "background",
        "senders": {"ops": True},
        "sending": {"ops": {"robot": "robot-1", "internal_errors": 0}},
        "wakeups": "fifo",
    }
    role = WorkerRole(0, 2, Path("/g"), 1, None, "http")
    _, details = group_readiness(role, own, {1: background}, {**COUNTS, "part": "http"})
    assert details["queues"]["ops"] == {
        **queue,
        "sender_running": True,
        "robot": "robot-1",
        "internal_errors": 0,
    }
    assert [details["workers"][i]["part"] for i in ("0", "1")] == ["http", "background"]
    # How those senders hear of new rows: the background worker's store says, not this one's.
    assert details["store"] == {"writable": True, "dead_letters": 0, "wakeups": "fifo"}


def test_a_whole_worker_keeps_its_own_senders_state() -> None:
    now = time.time()
    own = readiness([], {})
    own[1]["queues"] = {"ops": {"pending": 0, "sender_running": False}}
    other = {**snapshot(now, [], {}), "part": "whole", "senders": {"ops": True}, "sending": {}}
    _, details = group_readiness(ROLE, own, {0: other}, COUNTS)
    assert details["queues"]["ops"]["sender_running"] is False  # its own: not running


def bridge_for(tmp_path: Path, text: str, reads_files: bool, sends: bool = True) -> Bridge:
    config = compile_yaml(tmp_path, text)
    store = SqliteStore(tmp_path / "state")
    return Bridge(config, store=store, reads_files=reads_files, sends=sends)


def test_an_http_worker_has_no_sender_and_wakes_the_background_worker(tmp_path: Path) -> None:
    """What an HTTP worker queues, the background worker's store hears of at once (the FIFO
    beside the state file), and a reload that adds a target gives the HTTP worker no sender."""
    bridge = bridge_for(tmp_path, CONFIG, reads_files=False, sends=False)
    background = SqliteStore(tmp_path / "state")
    heard = threading.Event()
    background.listen(lambda target: heard.set())
    try:
        assert bridge.senders == {} and bridge.healthy()
        spec = bridge.config.routed_inputs()["am"]
        assert isinstance(spec, HttpInput)
        events = parse_notification(fixture_json("firing.json"), spec, bridge.clock.now())
        assert bridge.accept(spec, events).messages == 1
        assert heard.wait(10)
        (tmp_path / "config.yaml").write_text(
            CONFIG.replace("targets:\n", "targets:\n" + SECOND_TARGET), "utf-8"
        )
        assert bridge.reloader.reload("test")["result"] == "success"
        assert "two" in bridge.config.targets and bridge.senders == {}
    finally:
        background.close()
        bridge.store.close()


def test_a_worker_other_than_the_first_runs_no_file_input_even_after_a_reload(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "app.log"
    logs.write_text("", "utf-8")
    bridge = bridge_for(tmp_path, CONFIG, reads_files=False)
    try:
        (tmp_path / "config.yaml").write_text(
            CONFIG.replace("inputs:\n", "inputs:" + FILE_INPUT % logs), "utf-8"
        )
        result = bridge.reloader.reload("test")
        assert result["result"] == "success"
        assert "app" in bridge.config.file_inputs() and bridge.tailers == {}
    finally:
        bridge.store.close()


def test_a_reload_keeps_the_number_of_workers_until_a_restart(tmp_path: Path) -> None:
    bridge = bridge_for(tmp_path, CONFIG, reads_files=True)
    try:
        (tmp_path / "config.yaml").write_text("server: {workers: 4}\n" + CONFIG, "utf-8")
        result = bridge.reloader.reload("test")
        assert result["result"] == "success" and result["needs_restart"] == ["server"], result
        assert bridge.config.server.workers == 1
    finally:
        bridge.store.close()
