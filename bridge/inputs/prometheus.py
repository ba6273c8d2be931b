"""Alertmanager's `POST /api/v2/alerts`, as Prometheus's notifier sends it -> posted alerts.

The body is a JSON array of postable alerts (Alertmanager's OpenAPI `postableAlerts`):
`labels` (required, at least one), `annotations`, `startsAt`, `endsAt`, `generatorURL`. Each is
checked field by field, as Alertmanager does, so a bad request gets a 400 naming what is wrong;
the request is bounded (the input's `max_body_bytes`, MAX_ALERTS alerts, MAX_PAIRS labels and as
many annotations per alert). What a post does to the alerts kept is decided with the state
(bridge/alerting/alertstate.py), in the intake's transaction: the handler hands the checked
alerts to the sink and answers as Alertmanager does, 200 with `{}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bridge.alerting.alertstate import PostedAlert, event_of, received
from bridge.config.inputs.prometheus import PrometheusInput
from bridge.errors import bad_request
from bridge.inputs.alertmanager import rfc3339_time, string_map
from bridge.inputs.kind import InputRuntime, guarded_json, json_of
from bridge.inputs.request import Request, Sink
from bridge.model import Event

# Prometheus posts at most 64 alerts a request (its notifier's batch size; newer versions make
# it a flag, 256 by default); a thousand leaves room for any notifier and bounds the work (and
# the transaction) one request can cause.
MAX_ALERTS = 1000
# Labels (and annotations) per alert: real alerts carry tens; a body of a megabyte could carry
# tens of thousands, each a column of every message's render and of the state row.
MAX_PAIRS = 256
# Alertmanager's label names (model.LabelName.IsValid, the classic rule it validates posts with).
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_GO_ZERO_YEAR = 1  # Go's zero time (0001-01-01T00:00:00Z) means "not set"


def _pairs(value: Any, where: str, required: bool) -> dict[str, str]:
    pairs = string_map(value, where)
    if required and not pairs:
        raise bad_request(f"{where} must have at least one label")
    if len(pairs) > MAX_PAIRS:
        raise bad_request(f"{where} has {len(pairs)} entries; at most {MAX_PAIRS} are accepted")
    for name in pairs:
        if not _LABEL_NAME.fullmatch(name):
            raise bad_request(f"{where}: invalid name {name[:40]!r} (letters, digits and _)")
    return pairs


def _stamp(value: Any, where: str) -> float | None:
    parsed: datetime | None = rfc3339_time(value, where)
    if parsed is None or parsed.year == _GO_ZERO_YEAR:
        return None
    return parsed.timestamp()


def parse_alert(raw: Any, where: str) -> PostedAlert:
    if not isinstance(raw, dict):
        raise bad_request(f"{where} must be an object with labels")
    generator = raw.get("generatorURL", "")
    if not isinstance(generator, str):
        raise bad_request(f"{where}.generatorURL must be a string")
    starts_at = _stamp(raw.get("startsAt"), f"{where}.startsAt")
    ends_at = _stamp(raw.get("endsAt"), f"{where}.endsAt")
    if starts_at is not None and ends_at is not None and ends_at < starts_at:
        raise bad_request(f"{where}: endsAt is before startsAt")
    return PostedAlert(
        labels=_pairs(raw.get("labels"), f"{where}.labels", required=True),
        annotations=_pairs(raw.get("annotations"), f"{where}.annotations", required=False),
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url=generator,
    )


def parse_alerts(body: Any) -> list[PostedAlert]:
    """The alerts of a POST /api/v2/alerts body (InputError 400 naming what is wrong)."""
    if not isinstance(body, list):
        raise bad_request(
            "the body must be a JSON array of alerts (Alertmanager API v2: POST /api/v2/alerts)"
        )
    if len(body) > MAX_ALERTS:
        raise bad_request(f"{len(body)} alerts in one request; at most {MAX_ALERTS} are accepted")
    return [parse_alert(raw, f"[{i}]") for i, raw in enumerate(body)]


def serve(request: Request, spec: PrometheusInput, sink: Sink) -> Mapping[str, Any]:
    alerts = parse_alerts(guarded_json(request, spec))
    sink.accept_posted(spec, alerts)  # 503 when a queue is full or the store busy
    return {}  # Alertmanager answers a post with 200 and nothing to say


def sample(spec: PrometheusInput, data: bytes, source: str, now: datetime) -> list[Event]:
    """`render`: the events a body would cause if none of its alerts were known yet."""
    stamp = now.timestamp()
    events = []
    for posted in parse_alerts(json_of(data)):
        state, status = received(spec.name, posted, None, stamp, spec.resolve_timeout)
        if status is not None:
            events.append(event_of(state, status, now))
    return events


KIND = InputRuntime(type="prometheus", serve=serve, sample=sample, quick=True)
