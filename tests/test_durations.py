"""Durations: parsing, the bounds (a silence at most a year, a config duration at most 30 days),
and showing times no calendar reaches without an exception."""

from __future__ import annotations

import math
from zoneinfo import ZoneInfo

import pytest

from bridge.durations import (
    MAX_CONFIG_DURATION,
    MAX_SILENCE,
    format_duration,
    format_time,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("2w", 1_209_600.0),
        (1.5, 1.5),
    ],
)
def test_parse(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "maximum", "message"),
    [
        ("999999999d", MAX_SILENCE, "at most 365d"),
        ("366d", MAX_SILENCE, "at most 365d"),
        ("31d", MAX_CONFIG_DURATION, "at most 30d"),
        (math.inf, MAX_CONFIG_DURATION, "at most 30d"),
        (10**400, MAX_CONFIG_DURATION, "at most 30d"),
        (math.inf, None, "finite"),
        ("9" * 400 + "d", None, "not a duration"),
        (math.nan, None, "must be a number"),
        (-1, None, "negative"),
        (True, None, "true/false"),
        ("2 hours", None, "not a duration"),
    ],
)
def test_refused(value: object, maximum: float | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(value, maximum)  # type: ignore[arg-type]


def test_the_bounds_themselves_are_accepted() -> None:
    assert parse_duration("365d", MAX_SILENCE) == MAX_SILENCE
    assert parse_duration("30d", MAX_CONFIG_DURATION) == MAX_CONFIG_DURATION


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(45, "45s"), (200, "3m 20s"), (7500, "2h 5m"), (273600, "3d 4h"), (-5, "0s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [math.inf, 1e300])
def test_format_duration_of_what_no_clock_reaches(seconds: float) -> None:
    assert format_duration(seconds) == "forever"


@pytest.mark.parametrize(
    ("stamp", "text"),
    [
        (0.0, "1970-01-01 00:00:00"),
        (math.inf, "never"),
        (999_999_999 * 86_400.0, "after 9999"),
        (1e300, "after 9999"),
        (-1e300, "before 1970"),
        (math.nan, "invalid time"),
        ("garbage", "invalid time"),
    ],
)
def test_format_time_never_raises(stamp: float, text: str) -> None:
    assert format_time(stamp, ZoneInfo("UTC")) == text
