"""Durations as operators write them ("30s", "5m", 1.5) and as people read them ("2h 5m")."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")


def parse_duration(value: float | int | str) -> float:
    """Seconds in `value`; raises ValueError with a readable message."""
    if isinstance(value, bool):
        raise ValueError("a duration cannot be true/false")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    match = _DURATION.match(value.strip())
    if not match:
        raise ValueError(f'"{value}" is not a duration (e.g. "500ms", "30s", "5m", "2h", "1d")')
    return float(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """A short human duration: 45s, 3m 20s, 2h 5m, 3d 4h. Negative values read as 0s."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"
