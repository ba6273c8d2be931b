"""Duplicate notifications: when two requests carry the same Alertmanager notification.

Alertmanager's HA peers "fail open": each peer waits its turn (its position times the peer
timeout, 15 s) and then sends unless the gossiped notification log says another peer already
did. A slow answer, a partition or unsettled gossip, and both send; give Alertmanager the URLs of
two bridge replicas and every notification arrives twice by design. The chat should get it once.

**What makes two notifications the same** (`notification_digest`): what Alertmanager itself
would call one notification, read from the copy as every peer builds it:

- `groupKey` (the route and the group's labels) and `groupLabels`, and the notification's
  `status`;
- the *set* of alerts, each by its `fingerprint`, labels, `status`, `startsAt` and `endsAt`
  (times compared as instants, in UTC). A set: the order is not part of it;
- `truncatedAlerts` (Alertmanager's `max_alerts` hides the rest: a different count of hidden
  alerts is a different notification, even when the visible ones agree).

Left out, because the copies of one notification may differ in them while the news is the same:

- `receiver`: the input (its path) is where the notification is addressed; the receiver is
  Alertmanager's name for that address, and peers whose configs differ a little (a rollout in
  progress) or two routes that end at the same input name it differently. Within one input the
  chat would show the same thing twice.
- `externalURL`: each peer puts its own URL there.
- annotations and `generatorURL`: they come from whichever Prometheus evaluation (or replica)
  reached that peer last; Alertmanager itself never notifies because an annotation changed.
- `commonLabels`/`commonAnnotations`: derived from the alerts.

**What must not be merged**, and why it is not:

- A resolved after a firing: the status differs (of the notification and of the alert).
- An alert firing again after it resolved: a new `startsAt`.
- An alert joining or leaving the group, or resolving within it: the set differs.
- A reminder after `repeat_interval`: it is identical to the first notification, byte for byte
  in what we compare (a firing alert's `endsAt` is sent as the zero time). Only time tells it
  apart, hence the window: a copy is a duplicate only within `dedup_window` of the first one
  taken. Alertmanager sends a group at most once per `group_interval` (5 m by default), so a
  window no longer than the group_interval never swallows a real notification; peers' copies
  arrive within seconds (15 s per peer position). The default, 1 m, covers four peers' turns
  and a retry or two; the window is fixed from the first copy (later copies do not extend it,
  or reminders sent more often than the window would be absorbed for ever).

**Webhook inputs** get no such window. A generic JSON body has no notification identity (no
group key, no alert set): an identical body may well be a source repeating an event on purpose,
a heartbeat or a cron job. And a webhook's rules already keep a `repeat_interval` (4 h by
default) through the notification log, which absorbs the same alert, by fingerprint, arriving
twice from a retrying sender or through two replicas. Alertmanager's rules pass every
notification (repeat_interval 0: Alertmanager decides repeats), which is why they need this.

The memory of the digests is in the state store (`tx.duplicates.claim`, an atomic
insert-if-absent committed with the rows the first copy caused), so two replicas sharing a
database cannot both take the same notification, and a copy arriving after a restart is known.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge import jsontext
from bridge.config.model import HttpInput, Input
from bridge.model import Alert, Event


@dataclass(frozen=True)
class Claim:
    """The notification an accepted request carries, to be remembered by `input` until
    `expires` (Unix seconds): another copy before then is a duplicate."""

    input: str
    digest: str
    expires: float


def _instant(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value is not None else ""


def _alert_identity(alert: Alert) -> tuple[str, tuple[tuple[str, str], ...], str, str, str]:
    return (
        alert.fingerprint,
        tuple(sorted(alert.labels.items())),
        alert.status,
        _instant(alert.starts_at),
        _instant(alert.ends_at),
    )


def notification_digest(payload: Any, alerts: Sequence[Alert]) -> str:
    """What makes an Alertmanager notification itself (see the module docstring), hashed.
    `payload` is the webhook body, `alerts` its alerts as parsed (in any order)."""
    body = payload if isinstance(payload, dict) else {}
    group_labels = body.get("groupLabels")
    identity = {
        "groupKey": body.get("groupKey", ""),
        "groupLabels": sorted(group_labels.items()) if isinstance(group_labels, dict) else [],
        "status": body.get("status", ""),
        "truncatedAlerts": body.get("truncatedAlerts", 0),
        "alerts": sorted(set(map(_alert_identity, alerts))),
    }
    text = jsontext.dumps(identity, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def claim_for(spec: Input, events: Sequence[Event], now: float) -> Claim | None:
    """What to remember of a request's `events` (all parsed from one body), or None when its
    input keeps no window (a webhook, a file, `dedup_window: 0`) or it carried nothing."""
    if not isinstance(spec, HttpInput) or spec.dedup_window <= 0 or not events:
        return None
    if any(e.kind != "alertmanager" for e in events):
        return None
    # One event per notification, or with `split: true` one per alert: the same body either way.
    alerts = [alert for event in events for alert in event.alerts]
    digest = notification_digest(events[0].payload, alerts)
    return Claim(spec.name, digest, now + spec.dedup_window)
