"""Ask the config a question: what would become of one alert (a label set on an input), and why.

For the `route` command (and whatever else explains a routing decision): the rules walked in
order (pipeline.rules.tried: matched, or the first check that failed, or not reached), then the
daemon's own decide step against the state as it is, read-only (pipeline.preview): silences,
repeat intervals, acknowledgements, grouping. Nothing here decides a second time: the verdicts
are the preview's outcomes, looked up by rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from bridge.alerting.matchers import Matcher
from bridge.config.model import Config, Rule
from bridge.model import Alert, Event, Status, label_fingerprint
from bridge.pipeline.decide import IdSource
from bridge.pipeline.decision import EventDecision, RuleOutcome, Silenced
from bridge.pipeline.ids import new_id
from bridge.pipeline.preview import Preview, preview
from bridge.pipeline.rules import Miss, tried


@dataclass(frozen=True)
class RuleStep:
    """One rule of the config, as the walk met it."""

    rule: Rule
    reached: bool  # False: an earlier rule matched and does not continue
    miss: Miss | None = None  # reached and not matched: why (None when it matched)
    actual: str | None = None  # the alert's value of the failed matcher's label (None: unset)
    outcome: RuleOutcome | None = None  # matched and decided (None: the alert is silenced)

    @property
    def matched(self) -> bool:
        return self.reached and self.miss is None


@dataclass(frozen=True)
class Explanation:
    event: Event
    now: datetime
    steps: tuple[RuleStep, ...]
    silenced: tuple[Silenced, ...]  # the silences that swallow the alert (then nothing is sent)
    result: Preview

    def recipients(self) -> list[str]:
        """The targets that get a message, now or at a group's next flush, each once in order."""
        names: dict[str, None] = {}
        for step in self.steps:
            if step.outcome is not None:
                names.update((d.target, None) for d in self.result.deliveries(step.outcome))
        return list(names)


def hypothetical_event(
    input_name: str,
    kind: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    status: Status,
    now: datetime,
    fingerprint: str | None = None,
) -> Event:
    """One alert with these labels arriving on the input now, as an input hands it on: one
    alert inside the event, the identity (what the notification log and silences key on) the
    label set's unless given."""
    identity = fingerprint or label_fingerprint(labels)
    alert = Alert(
        status=status,
        labels=dict(labels),
        annotations=dict(annotations),
        starts_at=now,
        ends_at=now if status == "resolved" else None,
        generator_url="",
        fingerprint=identity,
    )
    return Event(
        input=input_name,
        kind=kind,
        status=status,
        labels=dict(labels),
        annotations=dict(annotations),
        fingerprint=identity,
        received_at=now,
        alerts=(alert,),
    )


def explain(config: Config, event: Event, now: datetime, make_id: IdSource = new_id) -> Explanation:
    """What the daemon would do with `event` at `now`, rule by rule, read-only."""
    result = preview(config, [event], now, make_id)
    [decided] = result.decision.events
    return Explanation(event, now, _steps(config.rules, decided), decided.silenced, result)


def _steps(rules: Sequence[Rule], decided: EventDecision) -> tuple[RuleStep, ...]:
    # The walk over the event as it arrived: a silenced alert still shows the rules it matches.
    labels = decided.event.labels
    walked = {rule.name: why for rule, why in tried(rules, decided.event)}
    outcomes = {o.rule: o for o in decided.outcomes}
    steps = []
    for rule in rules:
        why = walked.get(rule.name)
        actual = labels.get(why.name) if isinstance(why, Matcher) else None
        reached = rule.name in walked
        steps.append(RuleStep(rule, reached, why, actual, outcomes.get(rule.name)))
    return tuple(steps)
