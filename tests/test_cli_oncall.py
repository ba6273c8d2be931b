"""`dingtalk-bridge oncall`: who is on call now and next, as text (golden files) and as JSON;
`--at` in the config's zone or with an offset; one schedule or all; and the questions it cannot
answer (an unknown schedule, a time that does not parse, a config without schedules)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from bridge.cli.main import build_parser, main
from bridge.cli.oncall import cmd_oncall
from bridge.clock import FakeClock
from tests.harness import ROOT

CONFIG = ROOT / "tests" / "configs" / "good" / "oncall.yaml"
GOLDEN = ROOT / "tests" / "golden"


def oncall(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["oncall", "-c", str(CONFIG), *args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_golden(name: str, text: str) -> None:
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text, "utf-8")
    assert text == golden.read_text("utf-8"), f"differs from {golden}; UPDATE_GOLDEN=1 to accept"


@pytest.mark.parametrize(
    ("at", "golden"),
    [
        ("2026-12-03 09:00", "oncall-week.txt"),  # in the config's zone (Asia/Shanghai)
        ("2026-12-25T01:00:00Z", "oncall-override.txt"),  # dave's override, erin's just ended
    ],
)
def test_golden_text(capsys: pytest.CaptureFixture[str], at: str, golden: str) -> None:
    code, out, err = oncall(capsys, "--at", at)
    assert (code, err) == (0, "")
    assert_golden(golden, out)


def test_one_schedule_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    # web hands over at 09:00 New York time: the day DST begins (03-08) too
    code, out, _ = oncall(capsys, "web", "--json", "--at", "2026-03-08T09:30:00-04:00")
    assert code == 0
    assert json.loads(out) == {
        "at": "2026-03-08T21:30:00+08:00",
        "schedules": {
            "web": {
                "timezone": "America/New_York",
                "rotation_seconds": 86400.0,
                "now": {
                    "on_call": ["grace"],
                    "primary": "grace",
                    "secondaries": [],
                    "start": "2026-03-08T09:00:00-04:00",
                    "end": "2026-03-09T09:00:00-04:00",
                },
                "next": {
                    "on_call": ["frank"],
                    "primary": "frank",
                    "secondaries": [],
                    "start": "2026-03-09T09:00:00-04:00",
                    "end": "2026-03-10T09:00:00-04:00",
                },
            }
        },
    }


def test_secondaries_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = oncall(capsys, "db", "--json", "--at", "2026-12-07 10:00")
    now = json.loads(out)["schedules"]["db"]["now"]
    assert (code, now["primary"], now["secondaries"]) == (0, "bob", ["carol"])


def test_without_at_it_asks_the_clock(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["oncall", "-c", str(CONFIG), "db", "--json"])
    assert cmd_oncall(args, FakeClock(1_796_782_800.0)) == 0  # 2026-12-09 10:20, Shanghai
    answer = json.loads(capsys.readouterr().out)
    assert answer["at"] == "2026-12-09T10:20:00+08:00"
    assert answer["schedules"]["db"]["now"]["primary"] == "bob"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["nope"], 2, "unknown schedule 'nope'; schedules: db, web"),
        (["--at", "next tuesday"], 2, '--at: "next tuesday" is not a time'),
    ],
)
def test_questions_it_cannot_answer(
    capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    got, out, err = oncall(capsys, *args)
    assert (got, out) == (code, "")
    assert message in err


def test_a_config_without_schedules(capsys: pytest.CaptureFixture[str]) -> None:
    path = ROOT / "tests" / "configs" / "good" / "secrets.yaml"
    args = argparse.Namespace(config=str(path), at=None, schedule=None, json=False)
    assert cmd_oncall(args, FakeClock()) == 1
    assert "no oncall: schedules" in capsys.readouterr().err


def test_a_bad_config_lists_its_problems(capsys: pytest.CaptureFixture[str]) -> None:
    bad: Path = ROOT / "tests" / "configs" / "bad" / "oncall_problems.yaml"
    assert main(["oncall", "-c", str(bad)]) == 1
    assert "oncall.db.rotation: a rotation is at least 1h" in capsys.readouterr().err
