"""The alerts this process saw firing, with their labels: what the console's silence preview
matches typed matchers against.

The state store knows WHAT fires (the notification log keeps, per alert group, the
fingerprints firing at its last notification) but not with which labels: an Alertmanager
webhook's alerts are not kept once their message is queued. Rather than make the intake write
every alert's labels inside its transaction (the intake's throughput is the bridge's, issue 13),
this index is fed after each committed batch, in memory, bounded (least recently seen out
first), and read against the notification log's firing fingerprints, so an alert resolved
since (here, or by another replica) drops out. Under `server.workers` each worker also reads
the SHARED_ALERTS newest its siblings saw (`shared`, written beside their snapshots by
app/siblings.py when it changed); across replicas each knows its own, and the page says so.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.alerting.matchers import Matcher, all_match
from bridge.model import Event
from bridge.pipeline.decision import Decision, EventDecision

MAX_ALERTS = 10_000  # ~1-2 KB each with their labels: a few MB at most
SHARED_ALERTS = 2_000  # the newest a worker shows its siblings (written once a second at most)


@dataclass(frozen=True)
class SeenAlert:
    """One alert as last received: its labels, the rules it matched, its input, and when."""

    fingerprint: str
    labels: Mapping[str, str]
    rules: tuple[str, ...]
    input: str
    seen_at: float


class FiringIndex:
    """fingerprint -> the alert last seen firing under it; thread-safe (the HTTP threads feed
    it, the console reads it)."""

    def __init__(self, limit: int = MAX_ALERTS) -> None:
        self._limit = limit
        self._alerts: OrderedDict[str, SeenAlert] = OrderedDict()
        self._lock = threading.Lock()
        self.version = 0  # changes with every batch noted (siblings rewrite `shared`)

    def __len__(self) -> int:
        return len(self._alerts)

    def note(self, decision: Decision, at: float) -> None:
        """A committed batch: its firing alerts are (again) known, its resolved ones gone."""
        sightings = [s for one in decision.events for s in _sightings(one, at)]
        with self._lock:
            for fingerprint, seen in sightings:
                if seen is None:
                    self._alerts.pop(fingerprint, None)
                    continue
                earlier = self._alerts.pop(fingerprint, None)
                if earlier is not None and not seen.rules:  # silenced now: rules as before
                    seen = SeenAlert(
                        seen.fingerprint, seen.labels, earlier.rules, seen.input, seen.seen_at
                    )
                self._alerts[fingerprint] = seen
            while len(self._alerts) > self._limit:
                self._alerts.popitem(last=False)
            self.version += 1

    def seen(self) -> list[SeenAlert]:
        """Every alert known here (seen firing, not seen resolving since), latest seen first."""
        with self._lock:
            alerts = list(self._alerts.values())
        return alerts[::-1]

    def firing(self, in_log: frozenset[str]) -> list[SeenAlert]:
        """The alerts known here that the notification log says fire, latest seen first."""
        return [a for a in self.seen() if a.fingerprint in in_log]

    def shared(self, limit: int = SHARED_ALERTS) -> list[list[Any]]:
        """The `limit` latest seen, for the siblings: [fingerprint, labels, rules, input,
        seen_at] each, latest first."""
        with self._lock:
            latest = list(itertools.islice(reversed(self._alerts.values()), limit))
        return [[a.fingerprint, dict(a.labels), list(a.rules), a.input, a.seen_at] for a in latest]


def from_shared(data: Any) -> list[SeenAlert]:
    """The alerts in a sibling's `shared` (anything malformed in it is skipped)."""
    found: list[SeenAlert] = []
    for entry in data if isinstance(data, list) else ():
        if not (isinstance(entry, list) and len(entry) == 5):
            continue
        fingerprint, labels, rules, input_name, seen_at = entry
        if not (
            isinstance(fingerprint, str)
            and isinstance(labels, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
            and isinstance(rules, list)
            and all(isinstance(r, str) for r in rules)
            and isinstance(input_name, str)
            and isinstance(seen_at, int | float)
            and not isinstance(seen_at, bool)
        ):
            continue
        found.append(SeenAlert(fingerprint, labels, tuple(rules), input_name, float(seen_at)))
    return found


def latest_of(groups: Iterable[Iterable[SeenAlert]], in_log: frozenset[str]) -> list[SeenAlert]:
    """Several workers' alerts as one: those the notification log says fire, each fingerprint
    once (as last seen by any), latest seen first."""
    by_fingerprint: dict[str, SeenAlert] = {}
    for group in groups:
        for alert in group:
            if alert.fingerprint not in in_log:
                continue
            known = by_fingerprint.get(alert.fingerprint)
            if known is None or alert.seen_at > known.seen_at:
                by_fingerprint[alert.fingerprint] = alert
    return sorted(by_fingerprint.values(), key=lambda a: a.seen_at, reverse=True)


def matching(alerts: Iterable[SeenAlert], matchers: tuple[Matcher, ...]) -> list[SeenAlert]:
    """The alerts a silence with `matchers` would silence (Silence.matches: all must match)."""
    return [a for a in alerts if all_match(matchers, a.labels)]


def _sightings(one: EventDecision, at: float) -> list[tuple[str, SeenAlert | None]]:
    """(fingerprint, the alert) per firing alert of one event, (fingerprint, None) per
    resolved one: an event's alerts, or the event itself when it holds none (as the
    notification log counts them, alerting/dedup.alert_sets)."""
    event: Event = one.event
    rules = tuple(dict.fromkeys(o.rule for o in one.outcomes))
    if not event.alerts:
        if event.status != "firing":
            return [(event.fingerprint, None)]
        seen = SeenAlert(event.fingerprint, dict(event.labels), rules, event.input, at)
        return [(event.fingerprint, seen)]
    out: list[tuple[str, SeenAlert | None]] = []
    for alert in event.alerts:
        if alert.status != "firing":
            out.append((alert.fingerprint, None))
            continue
        seen = SeenAlert(alert.fingerprint, dict(alert.labels), rules, event.input, at)
        out.append((alert.fingerprint, seen))
    return out
