"""The alerts this process saw firing, with their labels: what the console's silence preview
matches typed matchers against.

The state store knows WHAT fires (the notification log keeps, per alert group, the
fingerprints firing at its last notification) but not with which labels: an Alertmanager
webhook's alerts are not kept once their message is queued. Rather than make the intake write
every alert's labels inside its transaction (the intake's throughput is the bridge's, issue 13),
this index is fed after each committed batch, in memory, bounded (least recently seen out
first), and read against the notification log's firing fingerprints, so an alert resolved
since (here, or by another replica) drops out. With several replicas or `server.workers`, each
process knows the alerts it received: the page says so.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bridge.alerting.matchers import Matcher, all_match
from bridge.model import Event
from bridge.pipeline.decision import Decision, EventDecision

MAX_ALERTS = 10_000  # ~1-2 KB each with their labels: a few MB at most


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

    def firing(self, in_log: frozenset[str]) -> list[SeenAlert]:
        """The alerts known here that the notification log says fire, latest seen first."""
        with self._lock:
            alerts = list(self._alerts.values())
        return [a for a in reversed(alerts) if a.fingerprint in in_log]


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
