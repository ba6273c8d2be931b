"""What the daemon would do with some events now, for the `render` command: the same decide step,
against the current state read-only (or an empty one when there is none yet).

Nothing is written: the state database, when there is one, is opened read-only, and the ids the
deliveries carry are drawn for the preview only. The messages of what would be queued are
rendered as the sender renders them (render.queued_message), from the event the row would keep.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from typing import Protocol

from bridge.alerting.mentions import pinged
from bridge.alerting.silences import Silence
from bridge.config.model import Config, Rule
from bridge.config.people import EMPTY as NO_PEOPLE
from bridge.config.people import Directory
from bridge.durations import format_time
from bridge.errors import StoreError
from bridge.model import Delivery, Event, Mention, Rendered
from bridge.pipeline.decide import IdSource, StateView, decide, decide_flush
from bridge.pipeline.decision import (
    Decision,
    Flush,
    Grouped,
    Hold,
    NotSentAgain,
    Queued,
    RuleOutcome,
    Silenced,
)
from bridge.pipeline.ids import new_id
from bridge.pipeline.render import queued_message, with_recipients
from bridge.pipeline.state import MemoryView, StoreView
from bridge.store.api import ReadTx
from bridge.store.backend import describe, read_only


@dataclass(frozen=True)
class Preview:
    decision: Decision
    # What each group an event joins would send at its next flush, if no other alert joins it
    # before, by (rule, group key).
    flushes: dict[tuple[str, str], Flush] = field(default_factory=dict)
    rendered: dict[str, Rendered] = field(default_factory=dict)  # by delivery id
    state_problem: str = ""  # why the state could not be read (then an empty one was used)
    state_empty: bool = False  # decided against an empty state (none yet, or unreadable)

    def deliveries(self, outcome: RuleOutcome) -> Sequence[Delivery]:
        """The messages one rule's outcome queues: now, or at its groups' next flush."""
        if isinstance(outcome, Queued):
            return outcome.deliveries
        if isinstance(outcome, Grouped):
            return [d for hold in outcome.holds for d in self._flushed(hold)]
        return ()

    def _flushed(self, hold: Hold) -> Sequence[Delivery]:
        flush = self.flushes.get((hold.rule, hold.key))
        return flush.outcome.deliveries if flush and isinstance(flush.outcome, Queued) else ()


class _ReadState(Protocol):
    view: StateView
    silences: list[Silence]

    def members(self, rule: str, key: str) -> list[Event]: ...


@dataclass
class _EmptyState:
    view: StateView = field(default_factory=MemoryView)
    silences: list[Silence] = field(default_factory=list)

    def members(self, rule: str, key: str) -> list[Event]:
        return []


class _StoredState:
    def __init__(self, tx: ReadTx, now: float) -> None:
        self._tx = tx
        self.view: StateView = StoreView(tx)
        self.silences = tx.silences.load(ended_after=now)

    def members(self, rule: str, key: str) -> list[Event]:
        return self._tx.groups.members(rule, key)


def preview(
    config: Config, events: Sequence[Event], now: datetime, make_id: IdSource = new_id
) -> Preview:
    """Decide `events` against the state the config names as it is now, read-only."""
    try:
        with read_state(config, now.timestamp()) as state:
            return _preview(config, events, state, now, make_id)
    except StoreError as exc:  # not a database, or one this version cannot read
        problem = f"state database {describe(config)} cannot be read ({exc})"
        result = _preview(config, events, _EmptyState(), now, make_id)
        return replace(result, state_problem=problem)


def _preview(
    config: Config, events: Sequence[Event], state: _ReadState, now: datetime, make_id: IdSource
) -> Preview:
    rules = config.rules_by_name
    silences = [*config.silences, *state.silences]
    decision = decide(config.rules, silences, events, state.view, now, make_id)
    joining: dict[tuple[str, str], list[Hold]] = {}  # a group several events join: each
    for outcome in decision.outcomes():
        for hold in outcome.holds if isinstance(outcome, Grouped) else ():
            joining.setdefault((hold.rule, hold.key), []).append(hold)
    flushes = {
        group: _flush(rules[group[0]], holds, state, make_id) for group, holds in joining.items()
    }
    notifications = [o.deliveries for o in decision.outcomes() if isinstance(o, Queued)]
    notifications += [
        f.outcome.deliveries for f in flushes.values() if isinstance(f.outcome, Queued)
    ]
    rendered: dict[str, Rendered] = {}
    for deliveries in notifications:
        if deliveries:  # one message per notification, the same for every target
            d = deliveries[0]
            message = queued_message(rules[d.rule], d.rule, d.message, d.event, d.created_at)
            for each in deliveries:  # a work notice's recipients by name: its own, per target
                refs = getattr(config.targets.get(each.target), "recipients", ())
                rendered[each.id] = (
                    replace(
                        message,
                        message=with_recipients(
                            message.message, rules[d.rule], d.event, d.created_at, refs
                        ),
                    )
                    if refs
                    else message
                )
    return Preview(decision, flushes, rendered, state_empty=isinstance(state, _EmptyState))


def _flush(rule: Rule, holds: list[Hold], state: _ReadState, make_id: IdSource) -> Flush:
    """A group's next flush, as if nothing joined it but `holds` (a member that is held already
    is replaced by its new state, and moves last, as store.alertlog.add_to_group does)."""
    first = holds[0]
    held = state.members(first.rule, first.key)
    for hold in holds:
        new = {m.fingerprint for m in hold.members}
        held = [*(m for m in held if m.fingerprint not in new), *hold.members]
    when = datetime.fromtimestamp(first.flush_at, UTC)
    return decide_flush(rule, first.rule, first.key, held, state.view, when, make_id)


@contextmanager
def read_state(config: Config, now: float) -> Iterator[_ReadState]:
    """The state the config names, read-only (its runtime silences still in force, its groups'
    members), or an empty state when there is none yet (the daemon has not run)."""
    with read_only(config) as tx:
        yield _EmptyState() if tx is None else _StoredState(tx, now)


def narrate(result: Preview, tz: tzinfo, people: Directory) -> Iterator[str | Delivery]:
    """What `render` and the console's playground say of a preview, in order: a line for each
    silence that applies, each event no rule matches and each verdict, and after each rule's
    verdicts the deliveries it makes (now, or at its groups' next flush)."""
    for one in result.decision.events:
        for silenced in one.silenced:
            yield explain_silenced(one.event, silenced)
        if one.unmatched:
            yield f"event {one.event.fingerprint} matches no rule"
        for outcome in one.outcomes:
            yield from verdicts(outcome, result, tz, people=people)
            yield from result.deliveries(outcome)


def explain_silenced(event: Event, silenced: Silenced) -> str:
    alert = "" if silenced.fingerprint == event.fingerprint else f" alert {silenced.fingerprint}"
    silence = silenced.silence
    return (
        f"event {event.fingerprint}{alert}: silenced by {silence.id} ({silence.describe()}, "
        f"{silence.source})"
    )


def verdicts(
    outcome: RuleOutcome,
    result: Preview,
    tz: tzinfo,
    templates: bool = True,
    people: Directory = NO_PEOPLE,
) -> list[str]:
    """What the daemon would do for one rule, a line each (a grouping rule: one per group).
    `templates`: also say when a template fails (`render`, which shows the bodies; `route`
    shows none)."""
    rule = f"rule {outcome.rule}"
    if isinstance(outcome, Grouped):
        return [
            line for hold in outcome.holds for line in _held(hold, result, tz, templates, people)
        ]
    if isinstance(outcome, NotSentAgain):
        return [f"{rule}: not sent again {_not_yet(outcome, tz)}"]
    if not outcome.deliveries:
        return [f"{rule}: all resolved: logged, not sent (send_resolved is off)"]
    targets = ", ".join(d.target for d in outcome.deliveries)
    return [
        f"{rule}: queued ({outcome.reason}) for {targets}",
        *_pings(outcome.deliveries, people, result),
        *(_failed(outcome.deliveries, result) if templates else []),
    ]


def _pings(deliveries: Sequence[Delivery], people: Directory, result: Preview) -> list[str]:
    """Who the message @-mentions (names, masked mobiles, userids), when it mentions anyone;
    whom a work notice's `recipients:` reach."""
    rule = deliveries[0].rule
    who = pinged(deliveries[0].message.mention, people)
    lines = [f"rule {rule}: pings {', '.join(who)}"] if who else []
    for d in deliveries:
        rendered = result.rendered.get(d.id)
        users = rendered.message.only_users if rendered is not None else ()
        if users:
            reached = pinged(Mention(userids=users), people)
            lines.append(f"rule {rule}: target {d.target} reaches {', '.join(reached)}")
    return lines


def _held(hold: Hold, result: Preview, tz: tzinfo, templates: bool, people: Directory) -> list[str]:
    flush = result.flushes.get((hold.rule, hold.key))
    until, joining = format_time(hold.flush_at, tz), _alerts(len(hold.members))
    line = f"rule {hold.rule}: grouped until {until} (group {hold.key[:8]}, {joining} joining)"
    if flush is None or flush.outcome is None:
        return [line]
    if isinstance(flush.outcome, NotSentAgain):
        return [f"{line}; that flush sends nothing: not sent again {_not_yet(flush.outcome, tz)}"]
    deliveries = flush.outcome.deliveries
    if not deliveries:
        return [f"{line}; that flush sends nothing (all resolved, send_resolved is off)"]
    sends = f"{line}; that flush, if no other alert joins before, sends ({_alerts(flush.held)})"
    if not templates:  # no bodies follow: say to whom
        return [
            f"{sends} to {', '.join(d.target for d in deliveries)}",
            *_pings(deliveries, people, result),
        ]
    return [f"{sends}:", *_pings(deliveries, people, result), *_failed(deliveries, result)]


def _alerts(count: int) -> str:
    return f"{count} alert{'s' if count != 1 else ''}"


def _not_yet(outcome: NotSentAgain, tz: tzinfo) -> str:
    told = "" if outcome.last_told is None else f"; last told {format_time(outcome.last_told, tz)}"
    if outcome.acknowledged_by is not None:
        return f"until it resolves (acknowledged by {outcome.acknowledged_by}){told}"
    if outcome.until is None:
        return "nothing new to tell (it was never told as firing)"
    return f"until {format_time(outcome.until, tz)} (repeat_interval){told}"


def _failed(deliveries: Sequence[Delivery], result: Preview) -> list[str]:
    error = result.rendered[deliveries[0].id].error
    if not error:
        return []
    rule = deliveries[0].rule
    return [f"rule {rule}: template failed ({error}); the fallback below would be sent"]
