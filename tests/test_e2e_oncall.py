"""The chat command `oncall` against the real daemon: the schedules of the live config, evaluated
at the daemon's clock. An override around the test's own time makes the answer certain (no
secondary, so a handover inside it changes nothing); who is next comes from the same rotation
through the pure maths."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bridge.alerting.oncall import on_call, people
from bridge.config.compile import load_config
from tests.harness import Daemon, Simulator
from tests.test_e2e_chat import daemon_config, replies, say

ZONE = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    sim = Simulator(spec={"robots": {"tok-chat": {"rate_per_minute": 0}}})
    yield sim
    sim.stop()


def minute(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp - stamp % 60, ZONE)


@pytest.fixture
def started() -> float:
    return time.time()


@pytest.fixture
def daemon(sim: Simulator, tmp_path: Path, started: float) -> Iterator[Daemon]:
    sim.control("reset")
    config: dict[str, Any] = daemon_config(sim)
    config["people"] = {name: {"userid": f"u-{name}"} for name in ("alice", "bob", "carol", "dave")}
    config["oncall"] = {
        "db": {
            "members": ["alice", "bob", "carol"],
            "rotation": "1w",
            "handover": "2026-11-30 10:00",
            "timezone": "America/New_York",
            "overrides": [
                {
                    "start": minute(started - 3600).isoformat(),
                    "end": minute(started + 7200).isoformat(),
                    "member": "dave",
                }
            ],
        }
    }
    daemon = Daemon(config, directory=tmp_path)
    yield daemon
    daemon.stop()


def test_oncall_names_who_is_on_call_and_next(
    sim: Simulator, daemon: Daemon, started: float
) -> None:
    assert say(daemon, sim, "oncall db", staff="dev-7").status_code == 200
    lines = replies(sim)[-1].removeprefix("@dev-7 ").splitlines()  # (the reply pings the asker)
    rotation = load_config(daemon.config_path, environ={}).oncall["db"]
    end = minute(started + 7200)
    assert lines == [
        "db (America/New_York, turns of 7d):",
        "  now: dave since "
        f"{minute(started - 3600):%a %Y-%m-%d %H:%M}, until {end:%a %Y-%m-%d %H:%M}",
        f"  next: {people(on_call(rotation, end.timestamp()))}",
    ]


def test_an_unknown_schedule_is_named(sim: Simulator, daemon: Daemon) -> None:
    assert say(daemon, sim, "oncall web", staff="dev-7").status_code == 200
    assert replies(sim)[-1].endswith("No schedule web; schedules: db")
