"""Commit a decision: outbox rows, notification-log entries, acks, escalations and group members
(and the updates of the interactive cards of alerts that resolved: pipeline/cardupdates.py).

Runs inside the caller's store transaction, the one decide's view read from: the rows and the log
entry that says they were sent commit together, so after a crash either both exist or neither
does (a message is never lost, nor sent twice, by a crash between the two).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bridge.logs import fmt_fields
from bridge.model import Delivery
from bridge.pipeline import cardupdates
from bridge.pipeline.decision import Decision, Flush, Grouped, Hold, Queued
from bridge.store.api import Tx

log = logging.getLogger("bridge.notify")  # the `queued` lines' logger, named as it always was


def commit(tx: Tx, decision: Decision, stamp: float) -> None:
    """Write what `decision` says, in the order it was decided; the outbox rows last."""
    for one in decision.events:
        for outcome in one.outcomes:
            if isinstance(outcome, Queued):
                _logged(tx, outcome)
            elif isinstance(outcome, Grouped):
                for hold in outcome.holds:
                    _hold(tx, hold, stamp)
    tx.outbox.enqueue(decision.deliveries, stamp)
    cardupdates.resolved(tx, decision.deliveries, stamp)


def commit_flush(tx: Tx, flush: Flush, stamp: float) -> None:
    """A due group: dropped, or its notification queued and the group kept for group_interval
    (its resolved alerts leave it once told; an empty group ends)."""
    if flush.dropped is not None:
        tx.groups.drop(flush.rule, flush.key)
        return
    if isinstance(flush.outcome, Queued):
        _logged(tx, flush.outcome)
        tx.outbox.enqueue(flush.outcome.deliveries, stamp)
        cardupdates.resolved(tx, flush.outcome.deliveries, stamp)
    tx.groups.after_flush(flush.rule, flush.key, stamp, flush.group_interval)


def _logged(tx: Tx, queued: Queued) -> None:
    if queued.forget_ack is not None:
        tx.acks.forget(queued.forget_ack)
    entry = queued.entry
    tx.alertlog.put_entry(entry.rule, entry.key, entry.firing, entry.resolved, entry.at)
    escalation = queued.escalation
    if escalation is not None:  # its clock starts with the first firing, stops with the end
        if entry.firing:
            tx.escalations.fired(
                entry.rule, entry.key, escalation.fingerprint, escalation.labels, entry.at
            )
        else:
            tx.escalations.resolved(entry.rule, entry.key, entry.at)


def _hold(tx: Tx, hold: Hold, stamp: float) -> None:
    members = [(m.fingerprint, m.status, m) for m in hold.members]
    tx.groups.add(hold.rule, hold.key, hold.labels, members, stamp, hold.group_wait)


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
