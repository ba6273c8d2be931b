"""Escalation, pure: which steps of which alerts are due now, and the message of a step.

An alert of a rule with `escalate` starts its clock when it first fires (the commit that queues
its first message writes the store's row: pipeline/commit.py). Step i is due once
`started_at + steps[i].after` has passed while the escalation still runs: not acknowledged (any
path: the chat's `ack`, an Ack link, a card button; all write the acks the decision reads), not
resolved (the resolution's commit stops the row), and not silenced now (a silenced alert does
not escalate; a step held by a silence is sent when the silence ends, if still unacknowledged).
Overdue steps (after a restart that took longer than the gap between two steps) are all due, in
order: none is lost. The effects (claims, the outbox, logs, counters) are pipeline/escalator.py's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from bridge.config.model import Rule
from bridge.locales import duration, translate
from bridge.model import Delivery, Message
from bridge.pipeline.ids import new_id
from bridge.pipeline.mentions import refs_mention
from bridge.pipeline.render import locale_of
from bridge.store.records import Escalation

# The signed Ack link of a step's message (target, message id), "" when the rule has none.
AckLink = Callable[[str, str], str]


@dataclass(frozen=True)
class StepDue:
    """Step `step` (0-based) of `escalation`'s rule is due."""

    escalation: Escalation
    step: int


@dataclass(frozen=True)
class Plan:
    """What the escalations need now: steps to send, in order; escalations an ack stopped
    (with who acknowledged); and rules whose escalations are no longer anyone's (the rule was
    removed, or lost its steps, in a reload)."""

    due: tuple[StepDue, ...] = ()
    acked: tuple[tuple[Escalation, str], ...] = ()
    orphaned: frozenset[str] = frozenset()


def due_steps(
    running: Iterable[Escalation],
    rules: Mapping[str, Rule],
    acked_by: Mapping[str, str],
    silenced: Callable[[Mapping[str, str]], bool],
    now: float,
) -> Plan:
    """The plan for `running` (escalations not stopped) at `now`. `acked_by`: fingerprint ->
    who acknowledged it; `silenced`: whether labels are silenced now."""
    due: list[StepDue] = []
    acked: list[tuple[Escalation, str]] = []
    orphaned: set[str] = set()
    for one in running:
        rule = rules.get(one.rule)
        if rule is None or not rule.escalate:
            orphaned.add(one.rule)
            continue
        by = acked_by.get(one.fingerprint)
        if by is not None:
            if one.steps_done < len(rule.escalate):  # an ack after the last step stops nothing
                acked.append((one, by))
            continue
        if silenced(one.labels):
            continue
        for step in range(one.steps_done, len(rule.escalate)):
            if one.started_at + rule.escalate[step].after > now:
                break
            due.append(StepDue(one, step))
    return Plan(tuple(due), tuple(acked), frozenset(orphaned))


def next_due_at(running: Iterable[Escalation], rules: Mapping[str, Rule]) -> float | None:
    """When the earliest step not sent yet falls due (None: none left)."""
    times = [
        one.started_at + rule.escalate[one.steps_done].after
        for one in running
        if (rule := rules.get(one.rule)) is not None and one.steps_done < len(rule.escalate)
    ]
    return min(times, default=None)


def step_text(rule: Rule, due: StepDue, now: float, ack_link: str = "") -> str:
    """The step's words, in the rule's language: which step, how long unacknowledged, and how
    to acknowledge."""
    locale = locale_of(rule)
    one = due.escalation
    what = one.labels.get("alertname") or rule.name
    where = one.labels.get("instance")
    if where:
        what = translate(locale, "%(alert)s on %(instance)s", alert=what, instance=where)
    lines = [
        translate(
            locale,
            "Escalation step %(step)d/%(steps)d: %(alert)s (rule %(rule)s) unacknowledged for"
            " %(duration)s.",
            step=due.step + 1,
            steps=len(rule.escalate),
            alert=what,
            rule=rule.name,
            duration=duration(locale, now - one.started_at),
        ),
        translate(locale, "Ack: @robot ack %(id)s", id=one.fingerprint[:8]),
    ]
    if ack_link:
        lines.append(translate(locale, "Ack link: %(url)s", url=ack_link))
    return "\n".join(lines)


def step_deliveries(
    rule: Rule,
    due: StepDue,
    now: float,
    ack_link: AckLink = lambda target, message_id: "",
) -> list[Delivery]:
    """The step's message for each of its targets, queued through the outbox like any alert
    (paced by the target's rate window, retried, never lost). Its mention refs ("alice",
    "oncall:db") are resolved now, through the rule's people and on-call schedules: a handover
    between the alert and the step is honoured. `ack_link`: the signed Ack link for the message
    of that id to that target ("": none)."""
    step = rule.escalate[due.step]
    mention = refs_mention(step.mention, rule, now)
    at = datetime.fromtimestamp(now, UTC)
    out = []
    for target in step.targets:
        id_ = new_id()
        text = step_text(rule, due, now, ack_link(target, id_))
        message = Message(msgtype="text", title=text.split("\n")[0], text=text, mention=mention)
        out.append(
            Delivery(
                id=id_,
                rule=rule.name,
                target=target,
                message=message,
                fingerprint=due.escalation.fingerprint,
                created_at=at,
                event_status="firing",
            )
        )
    return out
