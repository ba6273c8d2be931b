"""Aggregation groups (rules with group_by), as pure functions over events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from bridge.model import Alert, Event, label_fingerprint

ALL_LABELS = "..."


def group_labels(group_by: Sequence[str], labels: Mapping[str, str]) -> dict[str, str]:
    if ALL_LABELS in group_by:
        return dict(labels)
    return {name: labels.get(name, "") for name in group_by}


def group_key(labels: Mapping[str, str]) -> str:
    return label_fingerprint(labels)


def members(event: Event) -> list[Event]:
    """One single-alert event per alert (or the event itself when it carries no alerts)."""
    if not event.alerts:
        return [event]
    return [
        Event(
            input=event.input,
            kind=event.kind,
            status=alert.status,
            labels=alert.labels,
            annotations=alert.annotations,
            fingerprint=alert.fingerprint,
            received_at=event.received_at,
            alerts=(alert,),
            payload=event.payload,
        )
        for alert in event.alerts
    ]


def _as_alert(member: Event) -> Alert:
    if member.alerts:
        return member.alerts[0]
    return Alert(
        status=member.status,
        labels=member.labels,
        annotations=member.annotations,
        starts_at=member.received_at,
        ends_at=member.received_at if member.status == "resolved" else None,
        generator_url="",
        fingerprint=member.fingerprint,
    )


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def group_event(rule: str, key: str, held: Sequence[Event], now: datetime) -> Event:
    """The event a group flush renders: every held alert, and the labels they share."""
    alerts = tuple(_as_alert(m) for m in held)
    last = held[-1]
    return Event(
        input=last.input,
        kind=last.kind,
        status="firing" if any(a.status == "firing" for a in alerts) else "resolved",
        labels=_common([a.labels for a in alerts]),
        annotations=_common([a.annotations for a in alerts]),
        fingerprint=group_key({"rule": rule, "group": key}),
        received_at=now,
        alerts=alerts,
        payload=last.payload,
    )
