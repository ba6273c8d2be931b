"""Whether an alert group needs a notification now: Alertmanager's rule, as a pure function.

The notification log remembers, per rule and group, which alerts were firing and resolved when
we last notified, and when. A new notification goes out when an alert starts firing that we have
not announced, when alerts resolve (if the rule sends resolved messages), when everything we
announced has resolved, or when `repeat_interval` has passed with alerts still firing.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from bridge.model import Event


class NotifyReason(enum.StrEnum):
    FIRST = "first"
    NEW_FIRING = "new_firing"
    NEW_RESOLVED = "new_resolved"
    ALL_RESOLVED = "all_resolved"
    REPEAT = "repeat"


@dataclass(frozen=True)
class LogEntry:
    firing: frozenset[str]
    resolved: frozenset[str]
    at: float


def alert_sets(event: Event) -> tuple[frozenset[str], frozenset[str]]:
    """(firing, resolved) fingerprints: the event's alerts, or the event itself."""
    if event.alerts:
        firing = frozenset(a.fingerprint for a in event.alerts if a.status == "firing")
        resolved = frozenset(a.fingerprint for a in event.alerts if a.status == "resolved")
        return firing, resolved
    single = frozenset({event.fingerprint})
    return (single, frozenset()) if event.status == "firing" else (frozenset(), single)


def needs_update(
    last: LogEntry | None,
    firing: Iterable[str],
    resolved: Iterable[str],
    now: float,
    repeat_interval: float,
    send_resolved: bool,
) -> NotifyReason | None:
    firing_set, resolved_set = frozenset(firing), frozenset(resolved)
    if last is None:
        # Never notified: tell about firing alerts; alerts that fired and resolved unseen are news
        # to nobody.
        return NotifyReason.FIRST if firing_set else None
    if not firing_set <= last.firing:
        return NotifyReason.NEW_FIRING
    if not firing_set:
        return NotifyReason.ALL_RESOLVED if last.firing else None
    if send_resolved and not resolved_set <= last.resolved:
        return NotifyReason.NEW_RESOLVED
    if now - last.at >= repeat_interval:
        return NotifyReason.REPEAT
    return None
