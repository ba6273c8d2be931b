"""Alerting semantics as tables: dedup (needs_update), silences, grouping, and Intake + Grouper
against a real state store. Every clock is injected: plain floats and datetimes, never sleep."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.alerting import matchers
from bridge.alerting.dedup import LogEntry, NotifyReason, alert_sets, needs_update
from bridge.alerting.grouping import group_event, group_key, group_labels, members
from bridge.alerting.silences import Silence, filter_event, silencing
from bridge.clock import FakeClock
from bridge.config.model import Config, HttpInput
from bridge.errors import InputError, Reason, StoreError
from bridge.inputs.alertmanager import parse_notification
from bridge.inputs.webhook import parse_webhook
from bridge.model import Event
from bridge.pipeline.grouper import Grouper
from bridge.pipeline.intake import Intake
from bridge.pipeline.render import render
from bridge.store import records
from bridge.store.api import Store
from bridge.store.sqlite import SqliteStore
from tests.harness import compile_yaml, fixture_json

T0 = 1_000_000.0  # a plain float clock for the pure functions
HOUR = 3600.0
NOW = datetime(2026, 11, 28, 14, 0, 0, tzinfo=UTC)  # when Intake and the Grouper start

# --------------------------------------------------------------------------------------------
# needs_update: Alertmanager's DedupStage rule
# --------------------------------------------------------------------------------------------


def entry(firing: Iterable[str] = (), resolved: Iterable[str] = (), at: float = T0) -> LogEntry:
    return LogEntry(frozenset(firing), frozenset(resolved), at)


@dataclass(frozen=True)
class DedupCase:
    last: LogEntry | None
    firing: tuple[str, ...]
    resolved: tuple[str, ...]
    now: float
    expected: NotifyReason | None
    repeat_interval: float = HOUR
    send_resolved: bool = True


DEDUP_CASES: dict[str, DedupCase] = {
    "first-firing": DedupCase(None, ("a",), (), T0, NotifyReason.FIRST),
    "first-firing-with-some-resolved": DedupCase(None, ("a",), ("b",), T0, NotifyReason.FIRST),
    "first-only-resolved-is-no-news": DedupCase(None, (), ("a",), T0, None),
    "first-nothing-at-all": DedupCase(None, (), (), T0, None),
    "same-alert-within-repeat": DedupCase(entry(["a"]), ("a",), (), T0 + 60, None),
    "same-alert-just-before-repeat": DedupCase(entry(["a"]), ("a",), (), T0 + HOUR - 1, None),
    "same-alert-after-repeat": DedupCase(
        entry(["a"]), ("a",), (), T0 + HOUR + 1, NotifyReason.REPEAT
    ),
    "new-firing-within-repeat": DedupCase(
        entry(["a"]), ("a", "b"), (), T0 + 1, NotifyReason.NEW_FIRING
    ),
    "other-alert-firing-instead": DedupCase(
        entry(["a"]), ("b",), ("a",), T0 + 1, NotifyReason.NEW_FIRING
    ),
    "refiring-after-resolved-is-new": DedupCase(
        entry(["a"], ["b"]), ("a", "b"), (), T0 + 1, NotifyReason.NEW_FIRING
    ),
    "fewer-firing-nothing-resolved-within-repeat": DedupCase(
        entry(["a", "b"]), ("a",), (), T0 + 1, None
    ),
    "new-resolved-send-resolved-true": DedupCase(
        entry(["a", "b"]), ("a",), ("b",), T0 + 1, NotifyReason.NEW_RESOLVED
    ),
    "new-resolved-send-resolved-false": DedupCase(
        entry(["a", "b"]), ("a",), ("b",), T0 + 1, None, send_resolved=False
    ),
    "new-resolved-send-resolved-false-repeats-later": DedupCase(
        entry(["a", "b"]), ("a",), ("b",), T0 + HOUR + 1, NotifyReason.REPEAT, send_resolved=False
    ),
    "known-resolved-not-told-again": DedupCase(entry(["a"], ["b"]), ("a",), ("b",), T0 + 1, None),
    "all-resolved-after-firing": DedupCase(
        entry(["a", "b"]), (), ("a", "b"), T0 + 1, NotifyReason.ALL_RESOLVED
    ),
    "all-resolved-after-firing-even-without-send-resolved": DedupCase(
        entry(["a"]), (), ("a",), T0 + 1, NotifyReason.ALL_RESOLVED, send_resolved=False
    ),
    "resolved-only-when-nothing-was-announced": DedupCase(
        entry([], ["a"]), (), ("a", "b"), T0 + HOUR * 10, None
    ),
    "repeat-interval-0-same-instant": DedupCase(
        entry(["a"]), ("a",), (), T0, NotifyReason.REPEAT, repeat_interval=0.0
    ),
    "repeat-interval-0-a-moment-later": DedupCase(
        entry(["a"]), ("a",), (), T0 + 0.001, NotifyReason.REPEAT, repeat_interval=0.0
    ),
}


@pytest.mark.parametrize("case", DEDUP_CASES.values(), ids=DEDUP_CASES.keys())
def test_needs_update(case: DedupCase) -> None:
    reason = needs_update(
        case.last,
        case.firing,
        case.resolved,
        case.now,
        case.repeat_interval,
        case.send_resolved,
    )
    assert reason is case.expected


def _hook_event(status: str = "firing", **labels: str) -> Event:
    return Event(
        input="hook",
        kind="webhook",
        status="firing" if status == "firing" else "resolved",
        labels=labels,
        annotations={},
        fingerprint="hookfp",
        received_at=NOW,
    )


def _am_input() -> HttpInput:
    return HttpInput(name="am", type="alertmanager", path="/am", token=None, max_body_bytes=1 << 20)


def _am_payload(statuses: tuple[str, ...] = ("firing", "firing", "resolved")) -> dict[str, Any]:
    """The real fixture notification with one alert per status, on host-1, host-2, ..."""
    payload = fixture_json("firing.json")
    template = payload["alerts"][0]
    alerts = []
    for i, status in enumerate(statuses, start=1):
        alert = copy.deepcopy(template)
        alert["status"] = status
        alert["labels"]["instance"] = f"host-{i}:9100"
        alert["fingerprint"] = f"{i:016x}"
        if status == "resolved":
            alert["endsAt"] = "2026-11-28T13:30:00Z"
        alerts.append(alert)
    payload["alerts"] = alerts
    payload["commonLabels"] = {"alertname": "DiskFull", "job": "node", "severity": "warning"}
    payload["status"] = "firing" if "firing" in statuses else "resolved"
    return payload


def _am_event(statuses: tuple[str, ...] = ("firing", "firing", "resolved")) -> Event:
    (event,) = parse_notification(_am_payload(statuses), _am_input(), NOW)
    return event


ALERT_SETS: dict[str, tuple[Event, frozenset[str], frozenset[str]]] = {
    "webhook-firing": (_hook_event("firing"), frozenset({"hookfp"}), frozenset()),
    "webhook-resolved": (_hook_event("resolved"), frozenset(), frozenset({"hookfp"})),
    "alertmanager-mixed": (
        _am_event(),
        frozenset({f"{1:016x}", f"{2:016x}"}),
        frozenset({f"{3:016x}"}),
    ),
}


@pytest.mark.parametrize(("event", "firing", "resolved"), ALERT_SETS.values(), ids=ALERT_SETS)
def test_alert_sets_are_the_alerts_or_the_event_itself(
    event: Event, firing: frozenset[str], resolved: frozenset[str]
) -> None:
    assert alert_sets(event) == (firing, resolved)


# --------------------------------------------------------------------------------------------
# Silences
# --------------------------------------------------------------------------------------------


def silence(*texts: str, starts_at: float = T0 - HOUR, ends_at: float = T0 + HOUR) -> Silence:
    return Silence(
        "s-" + "-".join(texts), tuple(matchers.parse(t) for t in texts), starts_at, ends_at
    )


@dataclass(frozen=True)
class WebhookSilenceCase:
    silences: tuple[Silence, ...]
    now: float
    silenced: bool


WEBHOOK_SILENCES: dict[str, WebhookSilenceCase] = {
    "no-silences": WebhookSilenceCase((), T0, False),
    "matching-silence": WebhookSilenceCase((silence("service=pay"),), T0, True),
    "other-service": WebhookSilenceCase((silence("service=web"),), T0, False),
    "all-matchers-must-hold": WebhookSilenceCase((silence("service=pay", "env=dev"),), T0, False),
    "second-silence-matches": WebhookSilenceCase(
        (silence("service=web"), silence("env=prod")), T0, True
    ),
    "regex-matcher": WebhookSilenceCase((silence("service=~p.y"),), T0, True),
    "regex-is-anchored": WebhookSilenceCase((silence("service=~pa"),), T0, False),
    "negative-regex": WebhookSilenceCase((silence("service!~web|db"),), T0, True),
    "before-starts-at": WebhookSilenceCase(
        (silence("service=pay", starts_at=T0 + 1, ends_at=T0 + HOUR),), T0, False
    ),
    "at-starts-at": WebhookSilenceCase(
        (silence("service=pay", starts_at=T0, ends_at=T0 + HOUR),), T0, True
    ),
    "after-ends-at": WebhookSilenceCase(
        (silence("service=pay", starts_at=T0 - HOUR, ends_at=T0 - 1),), T0, False
    ),
    "at-ends-at-is-over": WebhookSilenceCase(
        (silence("service=pay", starts_at=T0 - HOUR, ends_at=T0),), T0, False
    ),
}


@pytest.mark.parametrize("case", WEBHOOK_SILENCES.values(), ids=WEBHOOK_SILENCES.keys())
def test_filter_webhook_event(case: WebhookSilenceCase) -> None:
    event = _hook_event(service="pay", env="prod")
    kept, swallowed = filter_event(event, case.silences, case.now)
    if case.silenced:
        assert kept is None
        assert [fp for _, fp in swallowed] == ["hookfp"]
        assert swallowed[0][0] is silencing(case.silences, event.labels, case.now)
    else:
        assert kept is event
        assert swallowed == []


@dataclass(frozen=True)
class AmSilenceCase:
    silences: tuple[Silence, ...]
    kept_hosts: tuple[str, ...]  # instance labels left, in order
    status: str | None  # the recomputed status; None: nothing left


AM_SILENCES: dict[str, AmSilenceCase] = {
    "none-silenced": AmSilenceCase(
        (silence("instance=nowhere"),), ("host-1", "host-2", "host-3"), "firing"
    ),
    "one-firing-silenced": AmSilenceCase(
        (silence('instance="host-1:9100"'),), ("host-2", "host-3"), "firing"
    ),
    "resolved-one-silenced": AmSilenceCase(
        (silence('instance="host-3:9100"'),), ("host-1", "host-2"), "firing"
    ),
    "both-firing-silenced-status-becomes-resolved": AmSilenceCase(
        (silence("instance=~host-[12]:.*"),), ("host-3",), "resolved"
    ),
    "two-by-two-silences": AmSilenceCase(
        (silence('instance="host-1:9100"'), silence('instance="host-3:9100"')),
        ("host-2",),
        "firing",
    ),
    "all-three-silenced": AmSilenceCase((silence("alertname=DiskFull"),), (), None),
    "inactive-silence-silences-nothing": AmSilenceCase(
        (silence("alertname=DiskFull", starts_at=T0 + 60, ends_at=T0 + HOUR),),
        ("host-1", "host-2", "host-3"),
        "firing",
    ),
    "expired-silence-silences-nothing": AmSilenceCase(
        (silence("alertname=DiskFull", starts_at=T0 - HOUR, ends_at=T0 - 60),),
        ("host-1", "host-2", "host-3"),
        "firing",
    ),
}


@pytest.mark.parametrize("case", AM_SILENCES.values(), ids=AM_SILENCES.keys())
def test_filter_alertmanager_event(case: AmSilenceCase) -> None:
    event = _am_event()
    kept, swallowed = filter_event(event, case.silences, T0)
    all_hosts = ["host-1", "host-2", "host-3"]
    silenced_fps = {f"{i:016x}" for i, h in enumerate(all_hosts, 1) if h not in case.kept_hosts}
    assert {fp for _, fp in swallowed} == silenced_fps
    if case.status is None:
        assert kept is None
        return
    assert kept is not None
    assert tuple(a.labels["instance"].split(":")[0] for a in kept.alerts) == case.kept_hosts
    assert kept.status == case.status
    # The event is otherwise the same one: identity, labels and payload are untouched.
    assert (kept.fingerprint, kept.labels, kept.payload) == (
        event.fingerprint,
        event.labels,
        event.payload,
    )


# --------------------------------------------------------------------------------------------
# Grouping
# --------------------------------------------------------------------------------------------

LABELS = {"alertname": "Latency", "service": "pay", "env": "prod"}

GROUP_LABELS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "one-name": (("service",), {"service": "pay"}),
    "two-names": (("service", "env"), {"service": "pay", "env": "prod"}),
    "missing-label-is-empty": (("service", "team"), {"service": "pay", "team": ""}),
    "no-names": ((), {}),
    "all-labels": (("...",), LABELS),
    "all-labels-wins-over-names": (("service", "..."), LABELS),
}


@pytest.mark.parametrize(("group_by", "expected"), GROUP_LABELS.values(), ids=GROUP_LABELS)
def test_group_labels(group_by: tuple[str, ...], expected: dict[str, str]) -> None:
    assert group_labels(group_by, LABELS) == expected


GROUP_KEYS = [
    pytest.param({"service": "pay"}, {"service": "pay"}, True, id="same-labels"),
    pytest.param(
        {"service": "pay", "env": "prod"},
        {"env": "prod", "service": "pay"},
        True,
        id="order-independent",
    ),
    pytest.param({"service": "pay"}, {"service": "web"}, False, id="other-value"),
    pytest.param({"service": "pay"}, {"team": "pay"}, False, id="other-name"),
    pytest.param({"service": "pay"}, {"service": "pay", "env": ""}, False, id="extra-label"),
    pytest.param(
        {"a": "b", "c": "d"},
        {"a": "b\x00c\x01d"},
        False,
        id="separator-in-value-is-another-group",
    ),
]


@pytest.mark.parametrize(("left", "right", "equal"), GROUP_KEYS)
def test_group_key_is_stable_and_order_independent(
    left: dict[str, str], right: dict[str, str], equal: bool
) -> None:
    key = group_key(left)
    assert key == group_key(dict(left))  # stable
    assert len(key) == 16 and int(key, 16) >= 0
    assert (key == group_key(right)) is equal


def test_members_splits_an_alertmanager_event_per_alert() -> None:
    event = _am_event()
    parts = members(event)
    assert len(parts) == 3
    for part, alert in zip(parts, event.alerts, strict=True):
        assert part.alerts == (alert,)
        assert (part.status, part.labels, part.annotations, part.fingerprint) == (
            alert.status,
            alert.labels,
            alert.annotations,
            alert.fingerprint,
        )
        assert (part.input, part.kind, part.received_at, part.payload) == (
            event.input,
            event.kind,
            event.received_at,
            event.payload,
        )
    assert [p.status for p in parts] == ["firing", "firing", "resolved"]


def test_members_of_a_webhook_event_is_the_event() -> None:
    event = _hook_event(service="pay")
    assert members(event) == [event]


GROUP_EVENTS: dict[str, tuple[tuple[str, ...], str]] = {
    "all-firing": (("firing", "firing", "firing"), "firing"),
    "one-firing": (("resolved", "firing", "resolved"), "firing"),
    "all-resolved": (("resolved", "resolved"), "resolved"),
}


@pytest.mark.parametrize(("statuses", "status"), GROUP_EVENTS.values(), ids=GROUP_EVENTS)
def test_group_event_keeps_all_alerts_and_common_labels(
    statuses: tuple[str, ...], status: str
) -> None:
    held = members(_am_event(statuses))
    later = NOW + timedelta(minutes=1)
    grouped = group_event("rule-a", "k1", held, later)
    assert grouped.alerts == tuple(m.alerts[0] for m in held)
    assert grouped.status == status
    # instance differs per alert, so only what all share remains
    assert grouped.labels == {
        "alertname": "DiskFull",
        "job": "node",
        "severity": "warning",
    }
    assert grouped.received_at == later
    assert grouped.fingerprint == group_event("rule-a", "k1", held[:1], NOW).fingerprint
    assert grouped.fingerprint != group_event("rule-b", "k1", held, later).fingerprint


def test_group_event_of_webhook_members_makes_alerts_of_them() -> None:
    firing = replace(_hook_event("firing", service="pay", check="a"), fingerprint="fa")
    resolved = replace(
        _hook_event("resolved", service="pay", check="b"),
        fingerprint="fb",
        received_at=NOW + timedelta(seconds=5),
    )
    grouped = group_event("r", "k", [firing, resolved], NOW + timedelta(seconds=30))
    assert [a.fingerprint for a in grouped.alerts] == ["fa", "fb"]
    assert [a.status for a in grouped.alerts] == ["firing", "resolved"]
    assert grouped.alerts[0].starts_at == NOW and grouped.alerts[0].ends_at is None
    assert grouped.alerts[1].ends_at == NOW + timedelta(seconds=5)
    assert grouped.labels == {"service": "pay"}
    assert grouped.status == "firing"


# --------------------------------------------------------------------------------------------
# Intake + Grouper against a real store
# --------------------------------------------------------------------------------------------

CONFIG = """
targets:
  ops: {type: robot, webhook: "http://127.0.0.1:1/robot/send?access_token=t"}
inputs:
  hook:
    type: webhook
    path: /hook
    labels: {alertname: "{{ body.check }}", service: "{{ body.service }}"}
    annotations: {summary: "{{ body.message }}"}
    status: "{{ 'resolved' if body.ok else 'firing' }}"
silences:
  - {matchers: ['service="maint"'], comment: "planned maintenance"}
rules:
  - name: grouped
    match: {service: pay}
    targets: [ops]
    group_by: [service]
    group_wait: 30s
    group_interval: 5m
    template: "{% for a in alerts %}- {{ a.labels.alertname }} {{ a.status }}\\n{% endfor %}"
  - name: quiet
    match: {service: quiet}
    targets: [ops]
    repeat_interval: 1h
    send_resolved: false
  - name: direct
    match_re: {service: "web|db|maint"}
    targets: [ops]
    repeat_interval: 1h
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    compiled: Config = compile_yaml(tmp_path_factory.mktemp("alerting"), CONFIG)
    return compiled


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = SqliteStore(tmp_path / "state")
    yield db
    db.close()


class Queued:
    """The on_queued callback: remembers which targets were woken."""

    def __init__(self) -> None:
        self.calls: list[set[str]] = []

    def __call__(self, targets: Iterable[str]) -> None:
        self.calls.append(set(targets))


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def hook_events(
    config: Config, service: str, check: str = "Latency", ok: bool = False, when: float = 0
) -> list[Event]:
    body = {"check": check, "service": service, "message": f"{check} on {service}", "ok": ok}
    return parse_webhook(body, config.http_inputs()["hook"], at(when))


def body_text(config: Config, row: records.Row) -> str:
    """The body the sender renders for a row (bodies are rendered at send time)."""
    assert row.event is not None
    rule = next(r for r in config.rules if r.name == row.rule)
    rendered = render(rule, row.event, NOW)
    assert rendered.error is None, rendered.error
    return rendered.message.text


def rows(store: Store) -> list[records.Row]:
    with store.reading() as tx:
        return tx.outbox.listing(limit=1000)


# (seconds after NOW, service, resolved?) per step, and the event_status of every outbox row
DEDUP_FLOWS: dict[str, tuple[list[tuple[float, str, bool]], list[str]]] = {
    "same-event-twice-within-repeat": ([(0, "web", False), (60, "web", False)], ["firing"]),
    "same-event-after-repeat-interval": (
        [(0, "web", False), (60, "web", False), (HOUR + 1, "web", False)],
        ["firing", "firing"],
    ),
    "resolved-is-sent": ([(0, "web", False), (60, "web", True)], ["firing", "resolved"]),
    "resolved-twice-is-sent-once": (
        [(0, "web", False), (60, "web", True), (120, "web", True)],
        ["firing", "resolved"],
    ),
    "fires-again-after-resolved": (
        [(0, "web", False), (60, "web", True), (120, "web", False)],
        ["firing", "resolved", "firing"],
    ),
    "resolved-not-sent-with-send-resolved-false": (
        [(0, "quiet", False), (60, "quiet", True)],
        ["firing"],
    ),
    "fires-again-after-unsent-resolved": (
        [(0, "quiet", False), (60, "quiet", True), (120, "quiet", False)],
        ["firing", "firing"],
    ),
    "resolved-without-firing-is-not-news": ([(0, "web", True)], []),
    "two-services-are-two-alerts": ([(0, "web", False), (1, "db", False)], ["firing", "firing"]),
}


@pytest.mark.parametrize(("steps", "expected"), DEDUP_FLOWS.values(), ids=DEDUP_FLOWS)
def test_intake_dedup_and_repeat(
    config: Config, store: Store, steps: list[tuple[float, str, bool]], expected: list[str]
) -> None:
    queued = Queued()
    intake = Intake(store, queued)
    for when, service, resolved in steps:
        events = hook_events(config, service, ok=resolved, when=when)
        intake.accept(config, config.http_inputs()["hook"], events, at(when))
    found = rows(store)
    assert [r.event_status for r in found] == expected
    assert all(r.target == "ops" and r.status == records.PENDING for r in found)
    assert len(queued.calls) == len(expected)
    assert all(call == {"ops"} for call in queued.calls)


class UnreachableStore(SqliteStore):
    """A store whose database went away: every read and transaction raises StoreError."""

    def reading(self) -> Any:
        raise StoreError("database unreachable")

    def transaction(self, share_commit: bool = False) -> Any:
        raise StoreError("database unreachable")


def test_intake_answers_503_whichever_read_meets_the_store_down_first(
    config: Config, tmp_path: Path
) -> None:
    """The refresh of silences and depths reads the store before the transaction: a store
    that is down there must be a 503 (Alertmanager retries), not an internal error."""
    store = UnreachableStore(tmp_path / "state")
    try:
        intake = Intake(store, Queued())
        spec = config.http_inputs()["hook"]
        for when in (0, 5):  # the first request refreshes the cache; the next one does not
            with pytest.raises(InputError) as refused:
                intake.accept(config, spec, hook_events(config, "web", when=when), at(when))
            assert (refused.value.status, refused.value.reason) == (503, Reason.STORE)
        assert intake.counters.events == {}  # nothing counted: the retries will be
    finally:
        SqliteStore.close(store)


def test_intake_resolved_row_is_rendered_as_resolved(config: Config, store: Store) -> None:
    intake = Intake(store, Queued())
    spec = config.http_inputs()["hook"]
    intake.accept(config, spec, hook_events(config, "web"), at(0))
    intake.accept(config, spec, hook_events(config, "web", ok=True, when=10), at(10))
    firing, resolved = rows(store)
    assert (firing.rule, resolved.rule) == ("direct", "direct")
    assert firing.event is not None and resolved.event is not None
    assert (firing.event.status, resolved.event.status) == ("firing", "resolved")
    assert (firing.event_status, resolved.event_status) == ("firing", "resolved")
    assert "### ✅ 恢复 · Latency" in body_text(config, resolved)  # Chinese: the default locale
    assert firing.fingerprint == resolved.fingerprint


# Checkpoints of a group's life: (seconds after NOW, services whose event arrives then, rows
# expected in the outbox after a Grouper.flush_due with its clock at that time)
GROUP_TIMELINE: list[tuple[float, list[tuple[str, str]], int]] = [
    (0, [("pay", "A")], 0),
    (1, [("pay", "B")], 0),
    (2, [("pay", "C")], 0),
    (29.9, [], 0),  # group_wait (30 s from the first event) not over yet
    (31, [], 1),  # first flush: one message for all three
    (40, [("pay", "D")], 1),  # a new alert joins; group_interval now governs
    (300, [], 1),
    (330.9, [], 1),  # 31 + 300 not reached yet
    (331, [], 2),  # second flush: the new alert
    (400, [], 2),
]


def test_grouper_flushes_after_group_wait_then_group_interval(config: Config, store: Store) -> None:
    queued = Queued()
    intake = Intake(store, queued)
    clock = FakeClock(NOW.timestamp())
    grouper = Grouper(store, lambda: config, queued, clock=clock)
    spec = config.http_inputs()["hook"]
    for when, arrivals, expected in GROUP_TIMELINE:
        for service, check in arrivals:
            intake.accept(config, spec, hook_events(config, service, check, when=when), at(when))
        clock.set(at(when).timestamp())
        grouper.flush_due()
        assert len(rows(store)) == expected, f"at t+{when}"
    first, second = rows(store)
    assert first.rule == second.rule == "grouped"
    assert first.event_status == "firing"
    first_text, second_text = body_text(config, first), body_text(config, second)
    for check in "ABC":
        assert f"- {check} firing" in first_text
    assert "- D" not in first_text
    # the second message is about the group as it is now: all four, D being the news
    for check in "ABCD":
        assert f"- {check} firing" in second_text
    assert first.created_at == at(31).timestamp()
    assert second.created_at == at(331).timestamp()
    assert queued.calls == [{"ops"}, {"ops"}]  # only the flushes queued anything


GROUP_WAIT_EDGES: dict[str, tuple[float, int]] = {
    "before-group-wait": (29.0, 0),
    "at-group-wait": (30.0, 1),
    "after-group-wait": (31.0, 1),
}


@pytest.mark.parametrize(("flush_at", "expected"), GROUP_WAIT_EDGES.values(), ids=GROUP_WAIT_EDGES)
def test_grouper_first_flush_waits_group_wait(
    config: Config, store: Store, flush_at: float, expected: int
) -> None:
    intake = Intake(store, Queued())
    spec = config.http_inputs()["hook"]
    for i, check in enumerate("ABC"):
        intake.accept(config, spec, hook_events(config, "pay", check, when=i), at(i))
    assert rows(store) == []  # a grouping rule never queues directly
    grouper = Grouper(store, lambda: config, Queued(), clock=FakeClock(at(flush_at).timestamp()))
    assert grouper.flush_due() == expected
    assert len(rows(store)) == expected


def test_grouper_resolved_group_tells_once_and_ends(config: Config, store: Store) -> None:
    intake = Intake(store, Queued())
    spec = config.http_inputs()["hook"]
    clock = FakeClock(at(0).timestamp())
    grouper = Grouper(store, lambda: config, Queued(), clock=clock)
    intake.accept(config, spec, hook_events(config, "pay", "A"), at(0))
    clock.set(at(30).timestamp())
    assert grouper.flush_due() == 1
    intake.accept(config, spec, hook_events(config, "pay", "A", ok=True, when=60), at(60))
    clock.set(at(330).timestamp())
    assert grouper.flush_due() == 1
    clock.set(at(630).timestamp())
    assert grouper.flush_due() == 0  # the group ended with its resolved message
    assert [r.event_status for r in rows(store)] == ["firing", "resolved"]
    assert "- A resolved" in body_text(config, rows(store)[1])


SILENCE_CASES: dict[str, tuple[str, tuple[float, float] | None, bool]] = {
    # (service of the event, runtime silence span on service=db or None, silenced?)
    "config-silence": ("maint", None, True),
    "runtime-silence": ("db", (-60.0, HOUR), True),
    "runtime-silence-not-started": ("db", (60.0, HOUR), False),
    "runtime-silence-expired": ("db", (-HOUR, -60.0), False),
    "unsilenced-service": ("web", (-60.0, HOUR), False),
}


@pytest.mark.parametrize(("service", "span", "silenced"), SILENCE_CASES.values(), ids=SILENCE_CASES)
def test_intake_silences_swallow_matching_events_only(
    config: Config,
    store: Store,
    service: str,
    span: tuple[float, float] | None,
    silenced: bool,
) -> None:
    if span is not None:
        with store.transaction() as tx:
            tx.silences.add(
                (matchers.parse('service="db"'),),
                at(span[0]).timestamp(),
                at(span[1]).timestamp(),
                "db migration",
                "tester",
                at(-120).timestamp(),
            )
    intake = Intake(store, Queued())
    spec = config.http_inputs()["hook"]
    events = [*hook_events(config, service), *hook_events(config, "web", "Other")]
    queued = intake.accept(config, spec, events, at(0))
    expected_fps = [e.fingerprint for e in events[int(silenced) :]]
    assert sorted(r.fingerprint for r in rows(store)) == sorted(expected_fps)
    assert queued.messages == len(expected_fps)
    assert queued.silenced == intake.counters.silenced == int(silenced)


def test_intake_applies_silences_stored_without_a_version(
    config: Config, store: SqliteStore
) -> None:
    """A state written before silences had a version (an older bridge, or `state migrate`,
    which keeps the version per database) holds silences and no version: they apply anyway."""
    with store.transaction() as tx:
        tx.silences.add(
            (matchers.parse('service="db"'),),
            at(-60).timestamp(),
            at(3600).timestamp(),
            "db migration",
            "tester",
            at(-120).timestamp(),
        )
    with store.db.transaction():
        store.db._conn.execute("DELETE FROM meta WHERE key = 'silences_version'")
    with store.reading() as tx:
        assert tx.silences.version() == ""
    intake = Intake(store, Queued())
    queued = intake.accept(config, config.http_inputs()["hook"], hook_events(config, "db"), at(0))
    assert (queued.silenced, queued.messages) == (1, 0)


def test_intake_unmatched_events_produce_no_row(config: Config, store: Store) -> None:
    queued = Queued()
    intake = Intake(store, queued)
    events = hook_events(config, "nobody-routes-this")
    accepted = intake.accept(config, config.http_inputs()["hook"], events, at(0))
    assert (accepted.messages, accepted.unmatched) == (0, len(events))
    assert rows(store) == []
    assert queued.calls == []
    assert intake.counters.unmatched == 1


def test_grouper_forgets_log_entries_untouched_for_a_week(config: Config, store: Store) -> None:
    intake = Intake(store, Queued())
    spec = config.http_inputs()["hook"]
    week = 7 * 86_400
    intake.accept(config, spec, hook_events(config, "web"), at(0))
    clock = FakeClock(at(week - 1).timestamp())
    grouper = Grouper(store, lambda: config, Queued(), clock=clock)
    [event] = hook_events(config, "web")

    def entry() -> object:
        with store.reading() as tx:
            return tx.alertlog.get_entry("direct", event.fingerprint)

    assert grouper.prune_log() == 0  # still within a week (and twice the 1h repeat_interval)
    assert entry() is not None
    clock.set(at(week + 1).timestamp())
    assert grouper.prune_log() == 1
    assert entry() is None
