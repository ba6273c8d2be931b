"""The pipeline's decide step as tables, in process: no store, a state held in a MemoryView, a
counter for ids and a fixed `now`. What the daemon commits and what `render` prints both come
from these decisions (pipeline.commit, pipeline.preview)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from bridge.alerting import matchers
from bridge.alerting.dedup import LogEntry, NotifyReason
from bridge.alerting.grouping import group_key
from bridge.alerting.silences import Silence
from bridge.config.model import Config
from bridge.model import Alert, Event, Status
from bridge.pipeline.decide import RULE_GONE, decide, decide_flush
from bridge.pipeline.decision import EventDecision, Grouped, NotSentAgain, Queued
from bridge.pipeline.state import MemoryView
from tests.harness import compile_yaml

NOW = datetime(2026, 11, 28, 14, 0, 0, tzinfo=UTC)
T = NOW.timestamp()
HOUR = 3600.0

CONFIG = """
targets:
  ops: {type: robot, webhook: "http://127.0.0.1:1/robot/send?access_token=t"}
  dev: {type: robot, webhook: "http://127.0.0.1:1/robot/send?access_token=u"}
inputs:
  hook: {type: webhook, path: /hook}
silences:
  - {matchers: ['service="maint"'], comment: "planned maintenance"}
rules:
  - name: grouped
    match: {service: pay}
    targets: [ops]
    group_by: [service]
    group_wait: 30s
    group_interval: 5m
  - name: quiet
    match: {service: quiet}
    targets: [ops]
    repeat_interval: 1h
    send_resolved: false
  - name: direct
    match_re: {service: "web|db|maint"}
    targets: [ops, dev]
    repeat_interval: 1h
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    compiled: Config = compile_yaml(tmp_path_factory.mktemp("decide"), CONFIG)
    return compiled


def event(service: str, status: Status = "firing", fp: str = "") -> Event:
    return Event(
        input="hook",
        kind="webhook",
        status=status,
        labels={"alertname": "Latency", "service": service},
        annotations={},
        fingerprint=fp or f"fp-{service}",
        received_at=NOW,
    )


def am_event(*alerts: tuple[str, Status], service: str = "db") -> Event:
    """An Alertmanager-like event with one alert per (service, status); the event's own labels
    (what rules match) say `service`."""
    return Event(
        input="hook",
        kind="alertmanager",
        status="firing" if any(s == "firing" for _, s in alerts) else "resolved",
        labels={"alertname": "Latency", "service": service},
        annotations={},
        fingerprint="fp-group",
        received_at=NOW,
        alerts=tuple(
            Alert(status, {"alertname": "Latency", "service": svc}, {}, NOW, None, "", f"a-{svc}")
            for svc, status in alerts
        ),
    )


def ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"id{next(counter)}"


def runtime_silence(service: str, starts: float = -60, ends: float = HOUR) -> Silence:
    return Silence(
        "sil-1", (matchers.parse(f'service="{service}"'),), T + starts, T + ends, "db migration"
    )


def only(decision: EventDecision) -> Queued | NotSentAgain | Grouped:
    [outcome] = decision.outcomes
    return outcome


@dataclass(frozen=True)
class Case:
    events: list[Event]
    view: MemoryView = field(default_factory=MemoryView)
    silences: tuple[Silence, ...] = ()
    # what each event becomes: "queued <reason> <targets>", "not sent again until <+s>",
    # "acknowledged by <who>", "nothing new", "silenced by <id>", "unmatched",
    # "grouped until <+s>", "logged, not sent"
    expected: list[str] = field(default_factory=list)


def told(rule: str, key: str, at: float = T - 60, firing: bool = True) -> MemoryView:
    entry = LogEntry(frozenset({key}) if firing else frozenset(), frozenset(), at)
    return MemoryView(entries={(rule, key): entry})


def summary(one: EventDecision) -> str:
    if one.kept is None:
        return "; ".join(f"silenced by {s.silence.id}" for s in one.silenced)
    if one.unmatched:
        return "unmatched"
    outcome = only(one)
    if isinstance(outcome, Grouped):
        [hold] = outcome.holds
        return f"grouped until +{hold.flush_at - T:g}"
    if isinstance(outcome, NotSentAgain):
        if outcome.acknowledged_by:
            return f"acknowledged by {outcome.acknowledged_by}"
        return "nothing new" if outcome.until is None else f"until +{outcome.until - T:g}"
    if not outcome.deliveries:
        return "logged, not sent"
    return f"queued {outcome.reason} " + ",".join(d.target for d in outcome.deliveries)


CASES: dict[str, Case] = {
    "first-firing-goes-to-every-target": Case([event("web")], expected=["queued first ops,dev"]),
    "told-a-minute-ago-is-not-sent-again-for-the-rest-of-the-hour": Case(
        [event("web")], told("direct", "fp-web"), expected=["until +3540"]
    ),
    "told-over-an-hour-ago-is-a-reminder": Case(
        [event("web")],
        told("direct", "fp-web", at=T - HOUR - 1),
        expected=["queued repeat ops,dev"],
    ),
    "acknowledged-gets-no-reminder": Case(
        [event("web")],
        MemoryView(
            entries={("direct", "fp-web"): LogEntry(frozenset({"fp-web"}), frozenset(), T - HOUR)},
            acks={"fp-web": "alice"},
        ),
        expected=["acknowledged by alice"],
    ),
    "resolved-never-told-is-no-news": Case([event("web", "resolved")], expected=["nothing new"]),
    "resolved-after-firing-is-told": Case(
        [event("web", "resolved")],
        told("direct", "fp-web"),
        expected=["queued all_resolved ops,dev"],
    ),
    "resolved-without-send-resolved-is-logged-only": Case(
        [event("quiet", "resolved")], told("quiet", "fp-quiet"), expected=["logged, not sent"]
    ),
    "config-silence": Case([event("maint")], expected=["silenced by config-0"]),
    "runtime-silence": Case(
        [event("db")], silences=(runtime_silence("db"),), expected=["silenced by sil-1"]
    ),
    "runtime-silence-not-started-yet": Case(
        [event("db")],
        silences=(runtime_silence("db", starts=60),),
        expected=["queued first ops,dev"],
    ),
    "no-rule": Case([event("nobody")], expected=["unmatched"]),
    "new-group-flushes-after-group-wait": Case([event("pay")], expected=["grouped until +30"]),
    "an-existing-group-keeps-its-flush-time": Case(
        [event("pay")],
        MemoryView(groups={("grouped", group_key({"service": "pay"})): T + 12}),
        expected=["grouped until +12"],
    ),
    "the-same-alert-twice-in-one-batch-is-told-once": Case(
        [event("web"), event("web")], expected=["queued first ops,dev", "until +3600"]
    ),
    "two-alerts-of-one-group-in-one-batch-share-its-flush": Case(
        [event("pay", fp="p1"), event("pay", fp="p2")],
        expected=["grouped until +30", "grouped until +30"],
    ),
    "a-resolve-then-a-firing-in-one-batch-is-news-again": Case(
        [event("web", "resolved"), event("web")],
        told("direct", "fp-web"),
        expected=["queued all_resolved ops,dev", "queued first ops,dev"],
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES)
def test_decide(config: Config, case: Case) -> None:
    silences = [*config.silences, *case.silences]
    decision = decide(config.rules, silences, case.events, case.view, NOW, ids())
    assert [summary(one) for one in decision.events] == case.expected


def test_config_silence_ids_are_what_the_table_says(config: Config) -> None:
    assert [s.id for s in config.silences] == ["config-0"]


def test_queued_rows_carry_the_event_and_drawn_ids_and_the_log_entry(config: Config) -> None:
    decision = decide(config.rules, [], [event("web")], MemoryView(), NOW, ids())
    outcome = only(decision.events[0])
    assert isinstance(outcome, Queued)
    assert [(d.id, d.target, d.rule) for d in outcome.deliveries] == [
        ("id1", "ops", "direct"),
        ("id2", "dev", "direct"),
    ]
    assert all(d.event == event("web") and d.created_at == NOW for d in outcome.deliveries)
    assert outcome.entry.firing == {"fp-web"} and outcome.entry.at == T
    assert outcome.forget_ack is None
    assert decision.deliveries == list(outcome.deliveries)


def test_resolving_forgets_the_ack(config: Config) -> None:
    view = told("direct", "fp-web")
    view.acks["fp-web"] = "alice"
    decision = decide(config.rules, [], [event("web", "resolved")], view, NOW, ids())
    outcome = only(decision.events[0])
    assert isinstance(outcome, Queued) and outcome.forget_ack == "fp-web"
    assert outcome.entry.firing == frozenset()  # commit deletes the entry: next firing is news


def test_partly_silenced_event_keeps_the_rest_and_says_which_alert_went(config: Config) -> None:
    both = am_event(("db", "firing"), ("web", "firing"))
    silence = runtime_silence("db")
    decision = decide(config.rules, [silence], [both], MemoryView(), NOW, ids())
    [one] = decision.events
    assert [(s.fingerprint, s.silence.id) for s in one.silenced] == [("a-db", "sil-1")]
    assert one.kept is not None and [a.fingerprint for a in one.kept.alerts] == ["a-web"]


def test_send_resolved_false_sends_only_the_firing_alerts(config: Config) -> None:
    mixed = am_event(("quiet", "firing"), ("quiet2", "resolved"), service="quiet")
    decision = decide(config.rules, [], [mixed], MemoryView(), NOW, ids())
    outcome = only(decision.events[0])
    assert isinstance(outcome, Queued)
    [delivery] = outcome.deliveries
    assert delivery.event is not None
    assert [a.status for a in delivery.event.alerts] == ["firing"]


def test_a_grouped_event_is_held_by_member(config: Config) -> None:
    decision = decide(
        config.rules, [], [am_event(("pay", "firing"), service="pay")], MemoryView(), NOW, ids()
    )
    outcome = only(decision.events[0])
    assert isinstance(outcome, Grouped)
    [hold] = outcome.holds
    assert hold.labels == {"service": "pay"} and hold.group_wait == 30
    assert [m.fingerprint for m in hold.members] == ["a-pay"]
    assert decision.deliveries == []


# --- due aggregation groups -----------------------------------------------------------------

LATER = NOW + timedelta(seconds=31)


def test_flush_of_a_held_group_is_one_notification(config: Config) -> None:
    rule = next(r for r in config.rules if r.name == "grouped")
    held = [event("pay", fp="p1"), event("pay", fp="p2")]
    flush = decide_flush(rule, "grouped", "k", held, MemoryView(), LATER, ids())
    assert flush.dropped is None and flush.held == 2 and flush.group_interval == 300
    assert isinstance(flush.outcome, Queued) and flush.outcome.reason is NotifyReason.FIRST
    [delivery] = flush.outcome.deliveries
    assert delivery.event is not None
    assert [a.fingerprint for a in delivery.event.alerts] == ["p1", "p2"]


def test_flush_with_nothing_new_is_not_sent_again(config: Config) -> None:
    rule = next(r for r in config.rules if r.name == "grouped")
    view = MemoryView(
        entries={("grouped", "k"): LogEntry(frozenset({"p1"}), frozenset(), LATER.timestamp())}
    )
    flush = decide_flush(rule, "grouped", "k", [event("pay", fp="p1")], view, LATER, ids())
    assert isinstance(flush.outcome, NotSentAgain)
    assert flush.dropped is None  # still kept for group_interval


FLUSH_DROPS = {"rule-removed": (None, [event("pay")], RULE_GONE), "empty": ("grouped", [], "empty")}


@pytest.mark.parametrize(("rule_name", "held", "why"), FLUSH_DROPS.values(), ids=FLUSH_DROPS)
def test_flush_drops(config: Config, rule_name: str | None, held: list[Event], why: str) -> None:
    rule = next((r for r in config.rules if r.name == rule_name), None)
    flush = decide_flush(rule, "grouped", "k", held, MemoryView(), LATER, ids())
    assert (flush.dropped, flush.outcome) == (why, None)


def test_a_rule_that_stopped_grouping_drops_its_groups(config: Config) -> None:
    direct = next(r for r in config.rules if r.name == "direct")
    flush = decide_flush(direct, "direct", "k", [event("web")], MemoryView(), LATER, ids())
    assert flush.dropped == RULE_GONE


def test_decide_is_a_function_of_its_arguments(config: Config) -> None:
    """Pure: given the same view, the same decision (ids aside), however often it is asked."""
    view = told("direct", "fp-web", at=T - HOUR - 1)
    events = [event("web"), event("pay"), event("maint"), event("nobody")]
    first = decide(config.rules, config.silences, events, view, NOW, ids())
    again = decide(config.rules, config.silences, events, view, NOW, ids())
    assert first == again
    assert view == told("direct", "fp-web", at=T - HOUR - 1)  # the view itself is not changed
