"""Durations as operators write them ("30s", "5m", 1.5) and as people read them ("2h 5m").

Every duration has an upper bound. Unbounded, `silence alertname=x 999999999d` was stored, and
then every listing failed: the end time lay beyond the year 9999 that `datetime` can show. The
bounds are far beyond any sensible use and far below any overflow:

- a silence lasts at most a year (MAX_SILENCE): a longer "silence" is a rule that should not
  send, and belongs in the config, reviewed, not in a chat command;
- a duration in the config (timeouts, retries, grouping and repeat intervals) is at most 30 days
  (MAX_CONFIG_DURATION): longer than any retry, repeat or grouping interval an Alertmanager user
  sets (its own defaults are minutes to hours), yet a typo like "400d" for "400s" is caught.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, tzinfo

from bridge import locales

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^(\d{1,30}(?:\.\d{1,30})?)(ms|s|m|h|d|w)$")
DAY = 86_400.0
MAX_SILENCE = 365 * DAY
MAX_CONFIG_DURATION = 30 * DAY


def parse_duration(value: float | int | str, maximum: float | None = None) -> float:
    """Seconds in `value`; raises ValueError with a readable message (naming `maximum`, the
    largest accepted value, when it is over it)."""
    if isinstance(value, bool):
        raise ValueError("a duration cannot be true/false")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int with hundreds of digits
            seconds = math.inf
        if math.isnan(seconds):
            raise ValueError("a duration must be a number")
        if seconds < 0:
            raise ValueError("a duration cannot be negative")
    else:
        match = _DURATION.match(value.strip())
        if not match:
            raise ValueError(
                f'"{value[:40]}" is not a duration (e.g. "500ms", "30s", "5m", "2h", "1d")'
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if maximum is not None and seconds > maximum:
        raise ValueError(f"a duration may be at most {format_duration(maximum)}")
    if not math.isfinite(seconds):
        raise ValueError("a duration must be finite")
    return seconds


def format_duration(seconds: float) -> str:
    """A short human duration in English: 45s, 3m 20s, 2h 5m, 3d 4h (see locales.duration)."""
    return locales.duration("en", seconds)


def format_time(stamp: float, tz: tzinfo, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A Unix time as local time in `tz`; "never" for +infinity and a plain marker (instead of an
    exception) for a time `datetime` cannot represent, e.g. a bad row stored before the bounds."""
    if isinstance(stamp, bool) or not isinstance(stamp, int | float) or math.isnan(stamp):
        return "invalid time"
    if stamp == math.inf:
        return "never"
    try:
        return datetime.fromtimestamp(stamp, tz).strftime(fmt)
    except (OverflowError, ValueError, OSError):
        return "after 9999" if stamp > 0 else "before 1970"


def parse_time(text: str, tz: tzinfo, now: float) -> float:
    """A point in time as an operator writes one: RFC 3339 / ISO 8601 (`2026-12-01T20:00:00Z`;
    without an offset, in `tz`, the configured zone), `now`, or a duration from now (`+2h`,
    `-30m`). Seconds since the epoch; raises ValueError saying what is accepted."""
    value = text.strip()
    if value == "now":
        return now
    if value[:1] in ("+", "-"):
        offset = parse_duration(value[1:])
        return now + offset if value[0] == "+" else now - offset
    try:
        when = datetime.fromisoformat(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=tz)
        return when.timestamp()
    except (ValueError, OverflowError, OSError):
        raise ValueError(
            f'"{value[:40]}" is not a time (e.g. "2026-12-01T20:00:00+08:00", '
            '"2026-12-01 20:00" in the configured zone, "now", "+2h", "-30m")'
        ) from None
