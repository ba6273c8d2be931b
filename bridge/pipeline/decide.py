"""Decide, purely, what accepted events become: silences, then rules, then dedup or grouping.

Functions of their arguments: the compiled rules and silences, a read view of the state (the
notification log, acks, aggregation groups), `now`, and an id source for the outbox rows. No I/O
of their own: the daemon passes a view over its open write transaction (pipeline.state) and
commits the result in that same transaction (pipeline.commit); `render` passes a read-only view
and prints it. Within a batch, what an earlier event decided is seen by the later ones (the same
alert twice in one request is told once), as if each had been committed before the next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from bridge.alerting import grouping
from bridge.alerting.dedup import LogEntry, NotifyReason, alert_sets, needs_update
from bridge.alerting.silences import Silence, filter_event
from bridge.config.model import Rule
from bridge.model import Delivery, Event, Message
from bridge.pipeline.decision import (
    Decision,
    EventDecision,
    Flush,
    Grouped,
    Hold,
    LogWrite,
    NotSentAgain,
    Queued,
    RuleOutcome,
    Silenced,
)
from bridge.pipeline.render import message_mention
from bridge.pipeline.rules import matching_rules

IdSource = Callable[[], str]
RULE_GONE = "rule no longer groups"  # why a due group is dropped (its rule changed by a reload)


class StateView(Protocol):
    """What decide reads of the state store."""

    def log_entry(self, rule: str, key: str) -> LogEntry | None: ...

    def acknowledged_by(self, fingerprint: str) -> str | None: ...

    def group_flush_at(self, rule: str, key: str) -> float | None: ...


class _Batch:
    """The view as the batch has changed it so far (decided, not yet committed)."""

    def __init__(self, view: StateView) -> None:
        self._view = view
        self._entries: dict[tuple[str, str], LogWrite] = {}
        self._acks_gone: set[str] = set()
        self._groups: dict[tuple[str, str], float] = {}

    def log_entry(self, rule: str, key: str) -> LogEntry | None:
        written = self._entries.get((rule, key))
        if written is None:
            return self._view.log_entry(rule, key)
        # An empty `firing` deletes the entry (store.alertlog.put_entry): the next firing is news.
        return LogEntry(written.firing, written.resolved, written.at) if written.firing else None

    def acknowledged_by(self, fingerprint: str) -> str | None:
        return None if fingerprint in self._acks_gone else self._view.acknowledged_by(fingerprint)

    def group_flush_at(self, rule: str, key: str) -> float | None:
        if (rule, key) in self._groups:
            return self._groups[(rule, key)]
        return self._view.group_flush_at(rule, key)

    def queued(self, outcome: Queued) -> None:
        self._entries[(outcome.entry.rule, outcome.entry.key)] = outcome.entry
        if outcome.forget_ack is not None:
            self._acks_gone.add(outcome.forget_ack)

    def held(self, hold: Hold) -> None:
        self._groups.setdefault((hold.rule, hold.key), hold.flush_at)


def decide(
    rules: Sequence[Rule],
    silences: Sequence[Silence],
    events: Iterable[Event],
    view: StateView,
    now: datetime,
    make_id: IdSource,
) -> Decision:
    """What each of `events` becomes, in order."""
    batch = _Batch(view)
    return Decision(tuple(_event(rules, silences, e, batch, now, make_id) for e in events))


def _event(
    rules: Sequence[Rule],
    silences: Sequence[Silence],
    event: Event,
    batch: _Batch,
    now: datetime,
    make_id: IdSource,
) -> EventDecision:
    kept, swallowed = filter_event(event, silences, now.timestamp())
    silenced = tuple([Silenced(fingerprint, silence) for silence, fingerprint in swallowed])
    if kept is None:
        return EventDecision(event, None, silenced)
    outcomes: list[RuleOutcome] = []
    for rule in matching_rules(rules, kept):
        if rule.group_by is not None:
            grouped = _hold(rule, rule.group_by, kept, batch, now.timestamp())
            for hold in grouped.holds:
                batch.held(hold)
            outcomes.append(grouped)
            continue
        outcome = notification(rule, kept, kept.fingerprint, batch, now, make_id)
        if isinstance(outcome, Queued):
            batch.queued(outcome)
        outcomes.append(outcome)
    return EventDecision(event, kept, silenced, tuple(outcomes))


def _hold(
    rule: Rule, group_by: tuple[str, ...], event: Event, view: StateView, stamp: float
) -> Grouped:
    by_key: dict[str, tuple[dict[str, str], list[Event]]] = {}
    for member in grouping.members(event):
        labels = grouping.group_labels(group_by, member.labels)
        key = grouping.group_key(labels)
        by_key.setdefault(key, (labels, []))[1].append(member)
    holds = []
    for key, (labels, held) in by_key.items():
        existing = view.group_flush_at(rule.name, key)
        flush_at = existing if existing is not None else stamp + rule.group_wait
        holds.append(Hold(rule.name, key, labels, tuple(held), rule.group_wait, flush_at))
    return Grouped(rule.name, tuple(holds))


def notification(
    rule: Rule, event: Event, key: str, view: StateView, now: datetime, make_id: IdSource
) -> Queued | NotSentAgain:
    """One rule, one alert group, now: what the notification log says to send. Shared by
    events that go straight out and by aggregation-group flushes."""
    stamp = now.timestamp()
    firing, resolved = alert_sets(event)
    last = view.log_entry(rule.name, key)
    told = last.at if last is not None else None
    reason = needs_update(last, firing, resolved, stamp, rule.repeat_interval, rule.send_resolved)
    if reason is NotifyReason.REPEAT:
        by = view.acknowledged_by(event.fingerprint)
        if by is not None:  # acknowledged from the chat: no reminders until it resolves
            return NotSentAgain(rule.name, key, event.fingerprint, None, by, told)
    if reason is None:
        until = last.at + rule.repeat_interval if last is not None and firing else None
        return NotSentAgain(rule.name, key, event.fingerprint, until, last_told=told)
    entry = LogWrite(rule.name, key, firing, resolved, stamp)
    forget_ack = event.fingerprint if not firing else None  # the next firing is news again
    if not rule.send_resolved:
        if reason is NotifyReason.ALL_RESOLVED:
            # Logged, not sent.
            return Queued(rule.name, key, reason, entry, (), forget_ack, _escalating(rule, event))
        if event.alerts:
            event = replace(event, alerts=tuple(a for a in event.alerts if a.status == "firing"))
    # Rendered when sent (see model.Delivery): here only what the sender needs before that.
    # (The mention too, resolved from the event's labels: a storm's digest pings whom its
    # merged messages would have.)
    head = Message(
        msgtype=rule.msgtype, title="", text="", mention=message_mention(rule, event, now)
    )
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
    escalation = _escalating(rule, event)
    return Queued(rule.name, key, reason, entry, tuple(deliveries), forget_ack, escalation)


def _escalating(rule: Rule, event: Event) -> Event | None:
    return event if rule.escalate else None


def decide_flush(
    rule: Rule | None,
    rule_name: str,
    key: str,
    held: Sequence[Event],
    view: StateView,
    now: datetime,
    make_id: IdSource,
) -> Flush:
    """A due group: one notification of all it holds, or dropped (its rule no longer groups,
    or it holds nothing)."""
    if rule is None or rule.group_by is None:
        return Flush(rule_name, key, dropped=RULE_GONE)
    if not held:
        return Flush(rule_name, key, dropped="empty")
    event = grouping.group_event(rule_name, key, held, now)
    outcome = notification(rule, event, key, view, now, make_id)
    return Flush(rule_name, key, outcome, len(held), rule.group_interval)
