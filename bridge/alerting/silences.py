"""Silences: matchers and a time span during which matching alerts are not sent. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import tzinfo

from bridge.alerting import matchers
from bridge.alerting.matchers import Matcher
from bridge.durations import MAX_SILENCE, format_duration, parse_duration, parse_time
from bridge.model import Event, Status


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    comment: str = ""
    author: str = ""
    source: str = "runtime"  # "config" or "runtime"
    expired_by: str = ""  # who ended it before its time ("" while it runs, or ran its course)

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        return matchers.all_match(self.matchers, labels)

    def describe(self) -> str:
        return ",".join(str(m) for m in self.matchers)


def silencing(silences: Iterable[Silence], labels: Mapping[str, str], now: float) -> Silence | None:
    """The first active silence that matches `labels`, if any."""
    for silence in silences:
        if silence.active(now) and silence.matches(labels):
            return silence
    return None


def filter_event(
    event: Event, silences: Sequence[Silence], now: float
) -> tuple[Event | None, list[tuple[Silence, str]]]:
    """The event without its silenced alerts (None when nothing is left), and what was silenced
    by which silence (as fingerprints)."""
    if not silences:
        return event, []
    if not event.alerts:
        silence = silencing(silences, event.labels, now)
        return (None, [(silence, event.fingerprint)]) if silence else (event, [])
    kept = []
    swallowed = []
    for alert in event.alerts:
        silence = silencing(silences, alert.labels, now)
        if silence is None:
            kept.append(alert)
        else:
            swallowed.append((silence, alert.fingerprint))
    if not swallowed:
        return event, []
    if not kept:
        return None, swallowed
    status: Status = "firing" if any(a.status == "firing" for a in kept) else "resolved"
    return replace(event, alerts=tuple(kept), status=status), swallowed


def silence_end(duration: str, until: str, tz: tzinfo, now: float) -> float:
    """When a silence asked for `until` a time (in `tz`) or for `duration` from `now` ends;
    raises ValueError saying what is wrong (the CLI's and the console's one check)."""
    ends = parse_time(until, tz, now) if until.strip() else now + parse_duration(duration)
    if ends <= now:
        raise ValueError("the silence would end before it starts")
    if ends - now > MAX_SILENCE:
        raise ValueError(
            f"a silence lasts at most {format_duration(MAX_SILENCE)} (a year); "
            "for longer, change the rules in the config"
        )
    return ends
