"""Alertmanager's webhook payload (version "4") -> Events.

One event per notification, whose labels are the notification's commonLabels (so rules match what
every alert in the group shares), or with `split: true` one event per alert. The payload is
checked field by field so a malformed request gets a 400 that names the field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bridge.config.model import HttpInput
from bridge.errors import bad_request
from bridge.inputs.kind import json_kind
from bridge.model import Alert, Event, Status, label_fingerprint

ParseAlert = Callable[[Any, str], Alert]  # one raw alert, and where it is (for the 400)


def object_of(value: Any, where: str, accepts: Callable[[Any], bool], what: str) -> dict[str, Any]:
    """`value`, an object each of whose values `accepts` (null reads as {}), or a 400 naming the
    field: "<where> must be an object of <what>s", "<where>.<key> must be a <what>"."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(f"{where} must be an object of {what}s")
    for key, item in value.items():
        if not accepts(item):
            raise bad_request(f"{where}.{key} must be a {what}")
    return value


def string_map(value: Any, where: str) -> dict[str, str]:
    return object_of(value, where, lambda item: isinstance(item, str), "string")


def _status(value: Any, where: str) -> Status:
    if value == "firing":
        return "firing"
    if value == "resolved":
        return "resolved"
    raise bad_request(f'{where} must be "firing" or "resolved"')


def rfc3339_time(value: Any, where: str) -> datetime | None:
    """An RFC 3339 time, always timezone-aware: a time without a zone is taken as UTC, as
    Alertmanager's own API reads one, so later arithmetic never mixes naive and aware times (a
    naive startsAt with an aware endsAt used to fail at every send). The offset given is kept
    (templates show it); a time whose UTC equivalent falls outside years 1-9999 is refused."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise bad_request(f"{where} must be an RFC 3339 time string")
    try:
        if len(value) > 64:  # the longest RFC 3339 time, with nanoseconds, has 35 characters
            raise ValueError
        parsed = datetime.fromisoformat(value.upper())  # RFC 3339 allows "t" and "z"
    except ValueError:
        raise bad_request(f"{where} is not an RFC 3339 time: {value[:40]!r}") from None
    if parsed.utcoffset() is None:
        return parsed.replace(tzinfo=UTC)
    try:
        parsed.astimezone(UTC)
    except OverflowError:
        raise bad_request(f"{where} is out of range: {value[:40]!r}") from None
    return parsed


def parse_alert(raw: Any, where: str) -> Alert:
    if not isinstance(raw, dict):
        raise bad_request(f"{where} must be an object")
    labels = string_map(raw.get("labels"), f"{where}.labels")
    fingerprint = raw.get("fingerprint")
    generator = raw.get("generatorURL", "")
    if not isinstance(generator, str):
        raise bad_request(f"{where}.generatorURL must be a string")
    return Alert(
        status=_status(raw.get("status"), f"{where}.status"),
        labels=labels,
        annotations=string_map(raw.get("annotations"), f"{where}.annotations"),
        starts_at=rfc3339_time(raw.get("startsAt"), f"{where}.startsAt"),
        ends_at=rfc3339_time(raw.get("endsAt"), f"{where}.endsAt"),
        generator_url=generator,
        fingerprint=fingerprint
        if isinstance(fingerprint, str) and fingerprint
        else label_fingerprint(labels),
    )


def parse_notification(body: Any, spec: HttpInput, now: datetime) -> list[Event]:
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object (Alertmanager webhook payload)")
    version = body.get("version", "4")
    if version != "4":
        hint = ' (version "1" is Grafana\'s webhook: an input of type: grafana takes it)'
        raise bad_request(
            f'unsupported payload version {str(version)[:10]!r}: expected "4"'
            + (hint if version == "1" else "")
        )
    alerts = alerts_of(body, "an Alertmanager webhook", parse_alert)
    return notification_events(body, spec, now, "alertmanager", alerts)


def alerts_of(body: dict[str, Any], source: str, parse: ParseAlert) -> tuple[Alert, ...]:
    """The alerts of an Alertmanager-shaped notification (`source` names the payload the 400
    expects), each read by `parse`."""
    raw_alerts = body.get("alerts")
    if not isinstance(raw_alerts, list):
        raise bad_request(f'missing "alerts": expected a list of alerts (is this {source}?)')
    if not raw_alerts:
        raise bad_request('"alerts" is empty')
    return tuple(parse(a, f"alerts[{i}]") for i, a in enumerate(raw_alerts))


def notification_events(
    body: dict[str, Any], spec: HttpInput, now: datetime, kind: str, alerts: tuple[Alert, ...]
) -> list[Event]:
    """The events of a notification shaped as Alertmanager's (its alerts already read): one per
    notification, labelled with its commonLabels and identified by its groupKey (the route and
    the group's labels: every notification of one group is the same alert to the notification
    log and to `ack`), or with `split` one per alert, identified by the alert's fingerprint."""
    common_labels = string_map(body.get("commonLabels"), "commonLabels")
    common_annotations = string_map(body.get("commonAnnotations"), "commonAnnotations")
    string_map(body.get("groupLabels"), "groupLabels")
    status = _status(body.get("status"), "status")
    if spec.split:
        return [
            Event(
                input=spec.name,
                kind=kind,
                status=alert.status,
                labels=alert.labels,
                annotations=alert.annotations,
                fingerprint=alert.fingerprint,
                received_at=now,
                alerts=(alert,),
                payload=body,
            )
            for alert in alerts
        ]
    group_key = body.get("groupKey")
    fingerprint = (
        hashlib.sha256(group_key.encode()).hexdigest()[:16]
        if isinstance(group_key, str) and group_key
        else label_fingerprint(common_labels)
    )
    return [
        Event(
            input=spec.name,
            kind=kind,
            status=status,
            labels=common_labels,
            annotations=common_annotations,
            fingerprint=fingerprint,
            received_at=now,
            alerts=alerts,
            payload=body,
        )
    ]


KIND = json_kind("alertmanager", parse_notification)
