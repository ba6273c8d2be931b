"""One rule, one alert group, now: consult the notification log, render, and record.

Shared by events that go straight out and by aggregation-group flushes. It runs inside the
caller's store transaction, so the outbox rows and the log entry commit together: after a crash,
either both exist or neither does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from bridge.alerting.dedup import NotifyReason, alert_sets, needs_update
from bridge.config.model import Rule
from bridge.logs import fmt_fields
from bridge.model import Delivery, Event, Message
from bridge.pipeline.plan import new_id
from bridge.store.api import Tx

log = logging.getLogger("bridge.notify")


@dataclass
class Notification:
    reason: NotifyReason | None
    deliveries: list[Delivery] = field(default_factory=list)


def notify(
    tx: Tx,
    rule: Rule,
    event: Event,
    key: str,
    now: datetime,
    make_id: Callable[[], str] = new_id,
) -> Notification:
    stamp = now.timestamp()
    firing, resolved = alert_sets(event)
    last = tx.alertlog.get_entry(rule.name, key)
    reason = needs_update(last, firing, resolved, stamp, rule.repeat_interval, rule.send_resolved)
    if reason is NotifyReason.REPEAT and tx.acks.acknowledged_by(event.fingerprint):
        reason = None  # acknowledged from the chat: no reminders until it resolves
    if reason is None:
        return Notification(None)
    if not firing:
        tx.acks.forget(event.fingerprint)  # resolved: the next firing is news again
    tx.alertlog.put_entry(rule.name, key, firing, resolved, stamp)
    if not rule.send_resolved:
        if reason is NotifyReason.ALL_RESOLVED:
            return Notification(reason)  # logged as told, but nobody asked to hear it
        if event.alerts:
            event = replace(event, alerts=tuple(a for a in event.alerts if a.status == "firing"))
    # Rendered when sent (see model.Delivery): here only what the sender needs before that.
    head = Message(msgtype=rule.msgtype, title="", text="", mention=rule.mention)
    deliveries = [
        Delivery(
            id=make_id(),
            rule=rule.name,
            target=target,
            message=head,
            fingerprint=event.fingerprint,
            created_at=now,
            event_status=event.status,
            event=event,
        )
        for target in rule.targets
    ]
    return Notification(reason, deliveries)


def log_queued(deliveries: Sequence[Delivery], **context: object) -> None:
    """A debug line per message put in the outbox. With the sender's `delivered`, `delivery
    retry` and `dead letter` lines (which name the same rule, target and id) one message can be
    followed through its life."""
    if not deliveries or not log.isEnabledFor(logging.DEBUG):
        return  # a storm queues thousands: not even the formatting when nobody reads it
    for d in deliveries:
        log.debug(
            fmt_fields(
                "queued",
                rule=d.rule,
                target=d.target,
                id=d.id,
                status=d.event_status,
                fingerprint=d.fingerprint,
                **context,
            )
        )
