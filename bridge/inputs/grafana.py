"""Grafana unified alerting's webhook contact point (payload version "1") -> Events.

Grafana notifies through an Alertmanager of its own, so its body is Alertmanager's notification
plus Grafana's fields: at the top `title` and `message` (what its contact point's templates
made), `state` ("alerting", or "ok" once nothing in the group fires) and `orgId`; per alert
`values` (each query or expression's refID and value), `valueString` (the same as text: Grafana 9
sent only this one), and links to the `dashboardURL`, `panelURL`, `silenceURL` and `imageURL`.

The Alertmanager part is read by bridge/inputs/alertmanager.py (one reading of one shape, the
events built the same way: one per notification identified by its groupKey, or with `split: true`
one per alert identified by the fingerprint Grafana gives it). This module checks Grafana's
fields and keeps each alert's on the alert (`Alert.extras`), where templates read them. A field
Grafana always sends but a body lacks reads as Go's zero value, as Grafana would have sent it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from bridge.config.model import HttpInput
from bridge.errors import bad_request
from bridge.inputs.alertmanager import alerts_of, notification_events, object_of, parse_alert
from bridge.inputs.kind import json_kind
from bridge.model import Alert, Event

VERSION = "1"
# Per alert, the links Grafana adds (imageURL only when the rule takes screenshots).
ALERT_LINKS = ("dashboardURL", "panelURL", "silenceURL", "imageURL")
NOTIFICATION_TEXTS = ("title", "state", "message")


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad_request(f"{where} must be a string")
    return value


def _is_value(item: Any) -> bool:
    """A query's value: a number, or null where it had none (JSON has no NaN)."""
    return item is None or (isinstance(item, int | float) and not isinstance(item, bool))


def parse_grafana_alert(raw: Any, where: str) -> Alert:
    """An alert of Grafana's body: Alertmanager's fields, and Grafana's in `extras`."""
    alert = parse_alert(raw, where)  # (it has checked that `raw` is an object)
    extras: dict[str, Any] = {name: _text(raw.get(name), f"{where}.{name}") for name in ALERT_LINKS}
    extras["values"] = object_of(raw.get("values"), f"{where}.values", _is_value, "number")
    extras["valueString"] = _text(raw.get("valueString"), f"{where}.valueString")
    return replace(alert, extras=extras)


def parse_grafana(body: Any, spec: HttpInput, now: datetime) -> list[Event]:
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object (Grafana webhook payload)")
    version = body.get("version")
    if version != VERSION:
        shown = "missing" if version is None else f"unsupported: {str(version)[:10]!r}"
        hint = (
            ' (version "4" is Alertmanager\'s webhook: an input of type: alertmanager takes it)'
            if version == "4"
            else " (Grafana's unified alerting webhook contact point, without a custom payload)"
        )
        raise bad_request(f'payload version {shown}: expected "{VERSION}"{hint}')
    for name in NOTIFICATION_TEXTS:
        _text(body.get(name), name)
    org = body.get("orgId")
    if org is not None and (isinstance(org, bool) or not isinstance(org, int)):
        raise bad_request("orgId must be an integer")
    alerts = alerts_of(body, "a Grafana webhook", parse_grafana_alert)
    return notification_events(body, spec, now, "grafana", alerts)


KIND = json_kind("grafana", parse_grafana)
