"""On-call rotation maths (bridge/alerting/oncall.py): tables across handovers (the instant before,
at and after), weekly and daily rotations, a zone with daylight saving time (America/New_York)
and zones without (Asia/Shanghai, UTC), overrides over part of a shift, a whole one and
overlapping ones, the time before the first handover; and, generated, that any instant names
members of the rotation and that the answer holds still between two handovers."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.alerting.oncall import (
    Override,
    Rotation,
    last_handover,
    lookup,
    next_handover,
    now_and_next,
    on_call,
    wall_instant,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")
DAY, WEEK = 86400.0, 7 * 86400.0
MEMBERS = ("alice", "bob", "carol")


def at(text: str, zone: ZoneInfo) -> float:
    """An instant written as a local time in `zone`."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def rotation(
    zone: ZoneInfo = SHANGHAI,
    length: float = WEEK,
    first: str = "2026-11-30 10:00",  # a Monday
    secondaries: int = 0,
    overrides: tuple[tuple[str, str, str], ...] = (),
    members: tuple[str, ...] = MEMBERS,
) -> Rotation:
    return Rotation(
        name="db",
        members=members,
        length=length,
        first_handover=datetime.fromisoformat(first),
        zone=zone,
        secondaries=secondaries,
        overrides=tuple(Override(at(s, zone), at(e, zone), m) for s, e, m in overrides),
    )


WEEKLY = rotation()
DAILY_NY = rotation(NEW_YORK, DAY, "2026-03-05 10:00")  # Thursday; DST begins Sunday 03-08
WEEKLY_NY = rotation(NEW_YORK, WEEK, "2026-10-26 10:00")  # Monday; DST ends Sunday 11-01

CASES = [
    # rotation, local time, who is on call (primary first)
    (WEEKLY, "2026-11-30 09:59:59", ("carol",)),  # before the first handover: counts backwards
    (WEEKLY, "2026-11-30 10:00", ("alice",)),  # at the first handover
    (WEEKLY, "2026-12-03 09:00", ("alice",)),
    (WEEKLY, "2026-12-07 09:59:59", ("alice",)),  # the instant before the second
    (WEEKLY, "2026-12-07 10:00", ("bob",)),  # at it
    (WEEKLY, "2026-12-07 10:00:01", ("bob",)),  # after it
    (WEEKLY, "2026-12-14 10:00", ("carol",)),
    (WEEKLY, "2026-12-21 10:00", ("alice",)),  # round again
    (WEEKLY, "2026-11-16 10:00", ("bob",)),  # two turns before the first
    (WEEKLY, "2025-11-30 10:00", ("bob",)),  # a year back: the turn from 2025-11-24, 53 back
    (DAILY_NY, "2026-03-07 10:00", ("carol",)),
    (DAILY_NY, "2026-03-08 09:59:59", ("carol",)),  # DST began at 02:00: still carol until 10:00
    (DAILY_NY, "2026-03-08 10:00", ("alice",)),  # 10:00 local, though 23 hours later
    (DAILY_NY, "2026-03-09 10:00", ("bob",)),
    (WEEKLY_NY, "2026-11-02 09:59:59", ("alice",)),  # DST ended on 11-01: the week had 169 hours
    (WEEKLY_NY, "2026-11-02 10:00", ("bob",)),
    (rotation(UTC, 12 * 3600, "2026-12-01 08:00"), "2026-12-01 19:59", ("alice",)),
    (rotation(UTC, 12 * 3600, "2026-12-01 08:00"), "2026-12-01 20:00", ("bob",)),
    (rotation(UTC, 12 * 3600, "2026-12-01 08:00"), "2026-12-02 08:00", ("carol",)),
    (rotation(secondaries=1), "2026-12-01 00:00", ("alice", "bob")),
    (rotation(secondaries=1), "2026-12-14 10:00", ("carol", "alice")),
    (rotation(secondaries=2), "2026-12-07 10:00", ("bob", "carol", "alice")),
    # a member listed twice: the secondary is the next one who is someone else
    (rotation(secondaries=1, members=("ann", "ann", "bob")), "2026-11-30 10:00", ("ann", "bob")),
]  # fmt: skip


@pytest.mark.parametrize(("schedule", "local", "expected"), CASES)
def test_who_is_on_call(schedule: Rotation, local: str, expected: tuple[str, ...]) -> None:
    assert on_call(schedule, at(local, schedule.zone)) == expected


OVERRIDES = (
    ("2026-12-03 18:00", "2026-12-04 09:00", "dave"),  # part of alice's week
    ("2026-12-14 10:00", "2026-12-21 10:00", "erin"),  # all of carol's week
    ("2026-12-20 00:00", "2026-12-20 12:00", "frank"),  # overlaps erin's, listed later: wins
)
OVERRIDDEN = rotation(secondaries=1, overrides=OVERRIDES)
OVERRIDE_CASES = [
    ("2026-12-03 17:59:59", ("alice", "bob")),
    ("2026-12-03 18:00", ("dave", "bob")),  # the override's member is primary, bob still second
    ("2026-12-04 08:59:59", ("dave", "bob")),
    ("2026-12-04 09:00", ("alice", "bob")),  # its end is excluded
    ("2026-12-14 10:00", ("erin", "alice")),
    ("2026-12-20 00:00", ("frank", "alice")),
    ("2026-12-20 12:00", ("erin", "alice")),  # frank's ended, erin's holds again
    ("2026-12-21 10:00", ("alice", "bob")),
]


@pytest.mark.parametrize(("local", "expected"), OVERRIDE_CASES)
def test_overrides(local: str, expected: tuple[str, ...]) -> None:
    assert on_call(OVERRIDDEN, at(local, SHANGHAI)) == expected


def test_an_override_by_the_secondary_names_the_next_one_second() -> None:
    schedule = rotation(secondaries=1, overrides=(("2026-12-01 00:00", "2026-12-02 00:00", "bob"),))
    assert on_call(schedule, at("2026-12-01 12:00", SHANGHAI)) == ("bob", "carol")


HANDOVER_CASES = [
    # rotation, local time, last change, next change
    (WEEKLY, "2026-12-03 09:00", "2026-11-30 10:00", "2026-12-07 10:00"),
    (WEEKLY, "2026-12-07 10:00", "2026-12-07 10:00", "2026-12-14 10:00"),
    (WEEKLY, "2026-12-07 09:59:59", "2026-11-30 10:00", "2026-12-07 10:00"),
    (DAILY_NY, "2026-03-08 03:00", "2026-03-07 10:00", "2026-03-08 10:00"),
    (OVERRIDDEN, "2026-12-03 12:00", "2026-11-30 10:00", "2026-12-03 18:00"),
    (OVERRIDDEN, "2026-12-03 18:00", "2026-12-03 18:00", "2026-12-04 09:00"),
    (OVERRIDDEN, "2026-12-15 00:00", "2026-12-14 10:00", "2026-12-20 00:00"),
]  # fmt: skip


@pytest.mark.parametrize(("schedule", "local", "last", "following"), HANDOVER_CASES)
def test_handovers(schedule: Rotation, local: str, last: str, following: str) -> None:
    moment = at(local, schedule.zone)
    assert last_handover(schedule, moment) == at(last, schedule.zone)
    assert next_handover(schedule, moment) == at(following, schedule.zone)


def test_an_override_of_the_same_person_is_no_handover() -> None:
    schedule = rotation(overrides=(("2026-12-01 00:00", "2026-12-02 00:00", "alice"),))
    moment = at("2026-12-01 12:00", SHANGHAI)
    assert (last_handover(schedule, moment), next_handover(schedule, moment)) == (
        at("2026-11-30 10:00", SHANGHAI),
        at("2026-12-07 10:00", SHANGHAI),
    )


def test_a_long_override_on_a_short_rotation_is_one_shift() -> None:
    hourly = rotation(UTC, 3600, "2026-01-01 00:00", overrides=(("2026-02-01", "2026-05-01", "x"),))
    moment = at("2026-03-01 00:00", UTC)
    assert (last_handover(hourly, moment), next_handover(hourly, moment)) == (
        at("2026-02-01", UTC),
        at("2026-05-01", UTC),
    )


def test_one_person_never_hands_over() -> None:
    alone = rotation(members=("alice",))
    assert next_handover(alone, 0.0) == math.inf
    assert last_handover(alone, 0.0) == -math.inf
    assert now_and_next(alone, 0.0)[1] is None


def test_now_and_next() -> None:
    current, following = now_and_next(rotation(secondaries=1), at("2026-12-03 09:00", SHANGHAI))
    assert (current.members, current.end) == (("alice", "bob"), at("2026-12-07 10:00", SHANGHAI))
    assert following is not None
    assert (following.members, following.start, following.end) == (
        ("bob", "carol"),
        at("2026-12-07 10:00", SHANGHAI),
        at("2026-12-14 10:00", SHANGHAI),
    )


def test_lookup_by_schedule_name() -> None:
    named = lookup({"db": WEEKLY}, at("2026-12-07 10:00", SHANGHAI))
    assert named("db") == ("bob",)
    with pytest.raises(KeyError):
        named("web")


WALL_CASES = [
    # local time, zone, the instant (UTC) it hands over at
    ("2026-03-08 02:30", NEW_YORK, "2026-03-08 07:00"),  # skipped: when the gap ends (03:00 EDT)
    ("2026-03-08 03:00", NEW_YORK, "2026-03-08 07:00"),
    ("2026-11-01 01:30", NEW_YORK, "2026-11-01 05:30"),  # repeated: the first time (EDT)
    ("2026-11-01 02:00", NEW_YORK, "2026-11-01 07:00"),
    ("2026-03-08 02:30", SHANGHAI, "2026-03-07 18:30"),
]


@pytest.mark.parametrize(("local", "zone", "utc"), WALL_CASES)
def test_wall_times_that_do_not_exist_or_repeat(local: str, zone: ZoneInfo, utc: str) -> None:
    assert wall_instant(datetime.fromisoformat(local), zone) == at(utc, UTC)


def test_an_hourly_rotation_loses_the_skipped_hour() -> None:
    hourly = rotation(NEW_YORK, 3600, "2026-03-08 00:00", members=("a", "b", "c", "d"))
    # 00:00 a, 01:00 b, 02:00 does not exist (c's turn has no length), 03:00 EDT d
    assert [on_call(hourly, at(t, NEW_YORK)) for t in ("2026-03-08 01:59", "2026-03-08 03:00")] == [
        ("b",),
        ("d",),
    ]


# Generated schedules: zones with and without DST, lengths from an hour to four weeks.
ZONES = st.sampled_from([SHANGHAI, NEW_YORK, UTC, ZoneInfo("Australia/Lord_Howe")])
LENGTHS = st.sampled_from([3600.0, 8 * 3600.0, 12 * 3600.0, DAY, 2 * DAY, WEEK, 4 * WEEK])
INSTANTS = st.floats(min_value=0.0, max_value=4_102_444_800.0)  # 1970 to 2100


@st.composite
def rotations(draw: st.DrawFn) -> Rotation:
    members = tuple(draw(st.lists(st.sampled_from("abcdef"), min_size=1, max_size=5)))
    zone = draw(ZONES)
    overrides = tuple(
        Override(start, start + draw(st.floats(1.0, 30 * DAY)), draw(st.sampled_from("xyz")))
        for start in draw(st.lists(INSTANTS, max_size=3))
    )
    first = datetime.fromtimestamp(draw(INSTANTS), zone).replace(tzinfo=None, microsecond=0)
    return Rotation(
        "g",
        members,
        draw(LENGTHS),
        first,
        zone,
        draw(st.integers(0, len(members) - 1)),
        overrides,
    )


@settings(max_examples=150, deadline=None)
@given(rotations(), INSTANTS, st.floats(0.0, 1.0))
def test_constant_between_handovers_and_only_members(
    schedule: Rotation, moment: float, fraction: float
) -> None:
    named = on_call(schedule, moment)
    allowed = set(schedule.members) | {o.member for o in schedule.overrides}
    assert named and set(named) <= allowed
    assert set(named[1:]) <= set(schedule.members)
    assert len(set(named)) == len(named)
    start, end = last_handover(schedule, moment), next_handover(schedule, moment)
    assert start <= moment < end
    if math.isfinite(end):
        assert on_call(schedule, end) != named
        inside = moment + fraction * (end - moment)
        assert on_call(schedule, min(inside, math.nextafter(end, 0))) == named
    if math.isfinite(start):
        assert on_call(schedule, start) == named
        assert on_call(schedule, math.nextafter(start, -math.inf)) != named
