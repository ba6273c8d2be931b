"""What the decide step says an event (or a due aggregation group) becomes: plain values.

The daemon commits these (pipeline.commit); the `render` command prints them (pipeline.preview).
Both read the same values, so `render` says what the daemon would do, not a second opinion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from bridge.alerting.dedup import NotifyReason
from bridge.alerting.silences import Silence
from bridge.model import Delivery, Event


@dataclass(frozen=True)
class Silenced:
    """One alert (by fingerprint) that a silence swallowed."""

    fingerprint: str
    silence: Silence


@dataclass(frozen=True)
class LogWrite:
    """The notification-log entry a notification leaves (an empty `firing` deletes it)."""

    rule: str
    key: str
    firing: frozenset[str]
    resolved: frozenset[str]
    at: float


@dataclass(frozen=True)
class Queued:
    """A notification goes out: the log entry is written and `deliveries` queued (none when
    everything resolved and the rule does not send resolved messages: logged, not sent)."""

    rule: str
    key: str
    reason: NotifyReason
    entry: LogWrite
    deliveries: tuple[Delivery, ...]
    forget_ack: str | None = None  # resolved: the ack of this fingerprint ends with it
    # A rule with `escalate`: the event whose firing starts (or whose resolution stops) the
    # alert's escalation (pipeline/escalation.py), written with the log entry.
    escalation: Event | None = None


@dataclass(frozen=True)
class NotSentAgain:
    """Deduplicated: the notification log says this was told already."""

    rule: str
    key: str
    fingerprint: str
    until: float | None  # when a reminder would go out; None: not by the clock
    acknowledged_by: str | None = None  # reminders stop until it resolves
    last_told: float | None = None  # when the log says it was last notified (None: never)


@dataclass(frozen=True)
class Hold:
    """Alerts added to one aggregation group of a rule with group_by."""

    rule: str
    key: str
    labels: Mapping[str, str]
    members: tuple[Event, ...]
    group_wait: float
    flush_at: float  # the group's next flush (a new group: now + group_wait)


@dataclass(frozen=True)
class Grouped:
    """A grouping rule matched: its alerts wait in their groups (one per group key)."""

    rule: str
    holds: tuple[Hold, ...]


RuleOutcome = Queued | NotSentAgain | Grouped


@dataclass(frozen=True)
class EventDecision:
    """One event: what silences took, then what each matching rule does with the rest."""

    event: Event
    kept: Event | None  # the event without its silenced alerts; None when all were
    silenced: tuple[Silenced, ...] = ()
    outcomes: tuple[RuleOutcome, ...] = ()

    @property
    def unmatched(self) -> bool:
        return self.kept is not None and not self.outcomes


@dataclass(frozen=True)
class Decision:
    """A batch of events (one request, or the lines of one file round), in order."""

    events: tuple[EventDecision, ...] = field(default_factory=tuple)

    def outcomes(self) -> list[RuleOutcome]:
        return [o for e in self.events for o in e.outcomes]

    @cached_property
    def deliveries(self) -> list[Delivery]:
        """Every message to queue, in order (what intake counts, checks for room and commits)."""
        out: list[Delivery] = []
        for one in self.events:
            for outcome in one.outcomes:
                if isinstance(outcome, Queued):
                    out += outcome.deliveries
        return out


@dataclass(frozen=True)
class Flush:
    """A due aggregation group: notified (or not, by the log) and kept for group_interval, or
    dropped when `dropped` says why."""

    rule: str
    key: str
    outcome: Queued | NotSentAgain | None = None
    held: int = 0
    group_interval: float = 0.0
    dropped: str | None = None
