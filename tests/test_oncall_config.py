"""The `oncall:` section compiled (bridge/config/oncall.py): times read in the schedule's zone (or
with their own offset), `secondary`, overrides, the config's zone as the default. Problems are
in tests/configs/bad/oncall_problems.*; the rotation maths in test_oncall.py."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bridge.alerting.oncall import Override, Rotation
from bridge.config.compile import load_config
from tests.harness import ROOT

GOOD = ROOT / "tests" / "configs" / "good"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp()


def test_schedules_compile_into_rotations() -> None:
    config = load_config(GOOD / "oncall.yaml", environ={})
    assert config.oncall == {
        "db": Rotation(
            name="db",
            members=("alice", "bob", "carol"),
            length=7 * 86400.0,
            first_handover=datetime(2026, 11, 30, 10, 0),
            zone=SHANGHAI,  # the config's
            secondaries=1,
            overrides=(
                # local times in the zone (a date is its midnight), or with their own offset
                Override(local("2026-12-24 18:00"), local("2026-12-26"), "dave"),
                Override(local("2026-12-25 08:00"), local("2026-12-25 09:00"), "erin"),
            ),
        ),
        "web": Rotation(
            name="web",
            members=("frank", "grace"),
            length=86400.0,
            # an offset converted to the schedule's wall time: later handovers keep 09:00 local
            first_handover=datetime(2026, 3, 1, 9, 0),
            zone=NEW_YORK,
        ),
    }


def test_no_section_no_schedules() -> None:
    assert load_config(GOOD / "secrets.yaml", environ={}).oncall == {}


def test_the_example_names_its_schedule() -> None:
    config = load_config(ROOT / "config.example.yaml", environ={})
    assert list(config.oncall) == ["db"]
