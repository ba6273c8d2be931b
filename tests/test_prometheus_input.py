"""The `prometheus` input without the network: Alertmanager's merge of a post into the alert it
keeps (a table), the parser of POST /api/v2/alerts bodies (a table of refusals, and generated
bodies: never anything but a 400), the config (the endpoint under the prefix), and posts and the
expiry sweep through the real intake and store with an injected clock: firing, refreshed,
resolved, expired, and what the rules' repeat_interval makes of re-sent alerts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.alerting.alertstate import PostedAlert, TrackedAlert, event_of, expired, received
from bridge.clock import FakeClock
from bridge.config.model import Config, PrometheusInput
from bridge.errors import ConfigError, InputError
from bridge.inputs import jsonbody
from bridge.inputs.prometheus import MAX_ALERTS, MAX_PAIRS, parse_alerts
from bridge.model import label_fingerprint
from bridge.pipeline.expiry import Expirer
from bridge.pipeline.intake import Intake
from bridge.pipeline.render import render
from bridge.pipeline.tracking import posted_events
from bridge.store import records
from bridge.store.api import Store
from bridge.store.sqlite import SqliteStore
from tests.harness import compile_yaml

T = 1_000_000.0  # a plain float clock for the pure functions
LABELS = {"alertname": "Down", "instance": "web-1"}

# --------------------------------------------------------------------------------------------
# received: what one post does to the alert kept
# --------------------------------------------------------------------------------------------


def posted(starts: float | None, ends: float | None, **annotations: str) -> PostedAlert:
    return PostedAlert(LABELS, annotations, starts, ends, "http://prom/graph")


def kept(starts: float, ends: float, resolved: bool, timeout: bool = False) -> TrackedAlert:
    return TrackedAlert(
        "prom",
        label_fingerprint(LABELS),
        LABELS,
        {},
        starts,
        ends,
        "http://prom/graph",
        resolved,
        timeout,
        T - 60,
    )


@dataclass(frozen=True)
class Case:
    post: PostedAlert
    before: TrackedAlert | None
    status: str | None  # the event it causes
    starts: float  # the state's startsAt and endsAt after it
    ends: float
    resolved: bool


CASES: dict[str, Case] = {
    "new-firing": Case(posted(T - 30, T + 40), None, "firing", T - 30, T + 40, False),
    "refresh-of-firing-is-firing-again": Case(
        posted(T - 30, T + 80), kept(T - 30, T + 40, False), "firing", T - 30, T + 80, False
    ),
    "resolved-post-of-firing": Case(
        posted(T - 30, T - 1), kept(T - 30, T + 40, False), "resolved", T - 30, T - 1, True
    ),
    "resolved-post-of-unknown-is-told": Case(
        posted(T - 30, T - 1), None, "resolved", T - 30, T - 1, True
    ),
    "resolved-re-sent-is-no-news": Case(
        posted(T - 30, T - 1), kept(T - 30, T - 1, True), None, T - 30, T - 1, True
    ),
    "firing-again-after-resolved": Case(
        posted(T - 5, T + 40), kept(T - 300, T - 60, True), "firing", T - 5, T + 40, False
    ),
    "no-start-is-now": Case(posted(None, T + 40), None, "firing", T, T + 40, False),
    "no-end-times-out-after-resolve-timeout": Case(
        posted(T - 30, None), None, "firing", T - 30, T + 300, False
    ),
    "overlap-keeps-the-earliest-start": Case(
        posted(T - 10, T + 40), kept(T - 30, T + 20, False), "firing", T - 30, T + 40, False
    ),
    "overlap-keeps-a-later-explicit-end": Case(
        posted(T - 10, T + 20), kept(T - 30, T + 60, False), "firing", T - 30, T + 60, False
    ),
    "overlap-drops-a-later-timeout-end": Case(
        posted(T - 10, T + 20),
        kept(T - 30, T + 60, False, timeout=True),
        "firing",
        T - 30,
        T + 20,
        False,
    ),
    "end-exactly-now-is-resolved": Case(posted(T - 30, T), None, "resolved", T - 30, T, True),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_post_merges_into_the_alert_kept(case: Case) -> None:
    state, status = received("prom", case.post, case.before, T, 300.0)
    assert status == case.status
    assert (state.starts_at, state.ends_at, state.resolved) == (
        case.starts,
        case.ends,
        case.resolved,
    )
    assert state.fingerprint == label_fingerprint(LABELS) and state.updated_at == T


def test_an_alert_expires_when_its_end_passes_unrefreshed() -> None:
    alert = kept(T - 30, T + 40, False)
    assert not expired(alert, T + 39.9)
    assert expired(alert, T + 40)
    assert not expired(kept(T - 30, T - 1, True), T + 40)  # told already


def test_the_event_of_a_resolved_alert_carries_its_end() -> None:
    alert = kept(T - 30, T + 40, False)
    when = datetime.fromtimestamp(T + 50, UTC)
    firing, resolved = event_of(alert, "firing", when), event_of(alert, "resolved", when)
    assert firing.alerts[0].ends_at is None  # a firing alert's endsAt is only a timeout
    assert resolved.alerts[0].ends_at == datetime.fromtimestamp(T + 40, UTC)
    assert (resolved.kind, resolved.status, resolved.fingerprint) == (
        "prometheus",
        "resolved",
        alert.fingerprint,
    )
    assert resolved.payload["labels"] == LABELS and resolved.payload["generatorURL"]


# --------------------------------------------------------------------------------------------
# parse_alerts: the body, checked as Alertmanager checks it
# --------------------------------------------------------------------------------------------

GOOD = {
    "labels": {"alertname": "Down", "instance": "web-1"},
    "annotations": {"summary": "web-1 is down"},
    "startsAt": "2026-12-01T10:00:00.123456789Z",
    "endsAt": "2026-12-01T18:04:00+08:00",
    "generatorURL": "http://prom:9090/graph?g0.expr=up+%3D%3D+0",
}


def test_a_prometheus_post_is_read_field_by_field() -> None:
    [alert] = parse_alerts([GOOD])
    assert alert.labels == GOOD["labels"] and alert.annotations == GOOD["annotations"]
    assert alert.starts_at == datetime(2026, 12, 1, 10, 0, 0, 123456, UTC).timestamp()
    assert alert.ends_at == datetime(2026, 12, 1, 10, 4, 0, tzinfo=UTC).timestamp()
    assert alert.generator_url == GOOD["generatorURL"]
    go_zero = {"labels": {"a": "b"}, "startsAt": "0001-01-01T00:00:00Z", "endsAt": None}
    assert parse_alerts([go_zero])[0].starts_at is None  # Go's zero time: not set
    assert parse_alerts([]) == []  # Alertmanager takes an empty list too


REFUSALS: dict[str, tuple[Any, str]] = {
    "object-not-array": ({"alerts": []}, "must be a JSON array of alerts"),
    "alert-not-object": (["x"], "[0] must be an object"),
    "no-labels": ([{"annotations": {}}], "[0].labels must have at least one label"),
    "empty-labels": ([{"labels": {}}], "[0].labels must have at least one label"),
    "label-not-string": ([{"labels": {"a": 1}}], "[0].labels.a must be a string"),
    "bad-label-name": ([{"labels": {"a-b": "x"}}], "[0].labels: invalid name 'a-b'"),
    "bad-annotation-name": (
        [{"labels": {"a": "b"}, "annotations": {"1x": "y"}}],
        "[0].annotations: invalid name '1x'",
    ),
    "bad-time": ([{"labels": {"a": "b"}, "startsAt": "yesterday"}], "[0].startsAt is not"),
    "end-before-start": (
        [
            {
                "labels": {"a": "b"},
                "startsAt": "2026-01-02T00:00:00Z",
                "endsAt": "2026-01-01T00:00:00Z",
            }
        ],
        "[0]: endsAt is before startsAt",
    ),
    "generator-not-string": ([{"labels": {"a": "b"}, "generatorURL": 5}], "generatorURL must be"),
    "too-many-alerts": ([{"labels": {"a": "b"}}] * (MAX_ALERTS + 1), f"at most {MAX_ALERTS}"),
    "too-many-labels": (
        [{"labels": {f"l{i}": "v" for i in range(MAX_PAIRS + 1)}}],
        f"[0].labels has {MAX_PAIRS + 1} entries; at most {MAX_PAIRS}",
    ),
}


@pytest.mark.parametrize(("body", "message"), REFUSALS.values(), ids=REFUSALS.keys())
def test_a_bad_post_is_a_400_naming_the_problem(body: Any, message: str) -> None:
    with pytest.raises(InputError) as refused:
        parse_alerts(body)
    assert refused.value.status == 400
    assert message in str(refused.value)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
_alertish = st.fixed_dictionaries(
    {},
    optional={
        "labels": st.dictionaries(st.text(max_size=12), st.text(max_size=12) | _json, max_size=4),
        "annotations": st.dictionaries(st.text(max_size=12), _json, max_size=3),
        "startsAt": st.text(max_size=40) | st.datetimes().map(lambda d: d.isoformat()) | _json,
        "endsAt": st.text(max_size=40) | st.datetimes().map(lambda d: d.isoformat() + "Z"),
        "generatorURL": st.text(max_size=20) | _json,
    },
)


@settings(max_examples=300, deadline=None)
@given(body=st.lists(_alertish, max_size=4) | _json)
def test_generated_bodies_parse_or_get_a_400(body: Any) -> None:
    raw = json.dumps(body).encode()
    try:
        alerts = parse_alerts(jsonbody.loads(raw))
    except InputError as exc:
        assert exc.status == 400 and str(exc)
        return
    now = 1_780_000_000.0
    for alert in alerts:  # and what parses, the state can take
        state, _ = received("prom", alert, None, now, 300.0)
        assert state.labels and state.fingerprint == label_fingerprint(alert.labels)


# --------------------------------------------------------------------------------------------
# the config: the endpoint under the prefix
# --------------------------------------------------------------------------------------------

CONFIG = """
targets:
  ops:
    type: robot
    webhook: "http://127.0.0.1:9/robot/send?access_token=t"
    rate_limit: {messages: 0}
inputs:
  prom: {type: prometheus, path: /prom, resolve_timeout: 2m}
rules:
  - name: all
    targets: [ops]
"""


@pytest.mark.parametrize(
    ("prefix", "endpoint"),
    [("/prom", "/prom/api/v2/alerts"), ("/prom/", "/prom/api/v2/alerts"), ("/", "/api/v2/alerts")],
)
def test_the_input_serves_alertmanagers_endpoint_under_its_path(
    tmp_path: Path, prefix: str, endpoint: str
) -> None:
    config = compile_yaml(tmp_path, CONFIG.replace("path: /prom", f"path: {prefix}"))
    spec = config.inputs["prom"]
    assert isinstance(spec, PrometheusInput)
    assert (spec.path, spec.prefix, spec.resolve_timeout) == (endpoint, prefix, 120.0)
    assert set(config.routed_inputs()) == {"prom"}
    assert config.rules[0].repeat_interval == 4 * 3600  # Prometheus does not decide repeats


def test_an_input_on_the_endpoint_of_a_prometheus_input_is_refused(tmp_path: Path) -> None:
    text = CONFIG.replace(
        "inputs:\n", "inputs:\n  hook: {type: webhook, path: /prom/api/v2/alerts}\n"
    )
    with pytest.raises(ConfigError) as refused:
        compile_yaml(tmp_path, text)
    assert 'path "/prom/api/v2/alerts" is already used by input "hook"' in str(refused.value)


# --------------------------------------------------------------------------------------------
# posts and the sweep through the intake and the store
# --------------------------------------------------------------------------------------------

NOW = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    result: Config = compile_yaml(tmp_path, CONFIG)
    return result


@pytest.fixture
def store(tmp_path: Path) -> Any:
    opened = SqliteStore(tmp_path / "state")
    yield opened
    opened.close()


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def prom_alert(starts: float, ends: float, **labels: str) -> PostedAlert:
    return PostedAlert(
        {"alertname": "Down", **labels},
        {"summary": "it is down"},
        at(starts).timestamp(),
        at(ends).timestamp(),
        "http://prom:9090/graph?g0.expr=up",
    )


def statuses(store: Store) -> list[str]:
    with store.reading() as tx:
        return [row.event_status for row in tx.outbox.listing(limit=1000)]


def post(intake: Intake, config: Config, when: float, *alerts: PostedAlert) -> None:
    spec = config.inputs["prom"]
    assert isinstance(spec, PrometheusInput)
    now = at(when)
    intake.accept_from(config, spec, lambda tx: posted_events(tx, spec, list(alerts), now), now)


def test_refreshes_are_not_sent_again_within_the_repeat_interval(
    config: Config, store: Store
) -> None:
    intake = Intake(store, lambda targets: None)
    post(intake, config, 0, prom_alert(-30, 40))
    for when in (15, 30, 45):  # Prometheus re-sends it every resend delay
        post(intake, config, when, prom_alert(-30, when + 40))
    assert statuses(store) == ["firing"]
    post(intake, config, 60, prom_alert(-30, 59))  # resolved
    post(intake, config, 75, prom_alert(-30, 59))  # and re-sent resolved
    assert statuses(store) == ["firing", "resolved"]
    post(intake, config, 4 * 3600 + 100, prom_alert(4 * 3600 + 90, 4 * 3600 + 140))
    assert statuses(store) == ["firing", "resolved", "firing"]  # firing again: news


def test_an_alert_not_refreshed_resolves_when_its_end_passes(config: Config, store: Store) -> None:
    clock = FakeClock(at(0).timestamp())
    intake = Intake(store, lambda targets: None)
    expirer = Expirer(store, intake, lambda: config, clock)
    post(intake, config, 0, prom_alert(-30, 40), prom_alert(-30, 100, instance="b"))
    clock.set(at(39).timestamp())
    assert expirer.sweep() == 0
    clock.set(at(40).timestamp())
    assert expirer.sweep() == 1  # the first; the second is still within its endsAt
    assert expirer.sweep() == 0  # resolved once
    assert statuses(store) == ["firing", "firing", "resolved"]
    with store.reading() as tx:
        rows = tx.outbox.listing(limit=10)
        kept = {a.labels.get("instance", ""): a for a in tx.alertstate.listing("prom")}
    assert kept[""].resolved and not kept["b"].resolved
    resolved = rows[-1]
    assert resolved.event is not None and resolved.event.labels.get("instance") is None
    rule = config.rules[0]
    text = render(rule, resolved.event, at(41)).message
    # The default title, as the alertmanager kind's, and the bundled template (Chinese: 恢复 is
    # resolved).
    assert text.title == "[恢复] Down"
    assert "恢复" in text.text and "it is down" in text.text
    # Posted again as resolved after the sweep resolved it: no second resolved message.
    post(intake, config, 50, prom_alert(-30, 45))
    assert statuses(store) == ["firing", "firing", "resolved"]


def test_a_refresh_in_time_keeps_it_firing(config: Config, store: Store) -> None:
    clock = FakeClock(at(0).timestamp())
    intake = Intake(store, lambda targets: None)
    expirer = Expirer(store, intake, lambda: config, clock)
    post(intake, config, 0, prom_alert(-30, 40))
    post(intake, config, 30, prom_alert(-30, 70))
    clock.set(at(60).timestamp())
    assert expirer.sweep() == 0
    clock.set(at(70).timestamp())
    assert expirer.sweep() == 1
    assert statuses(store) == ["firing", "resolved"]


def test_a_sweep_refused_leaves_the_alert_firing_for_the_next(
    config: Config, store: Store, tmp_path: Path
) -> None:
    """A target's queue is full (503): nothing is resolved, and the next sweep does it."""
    full = compile_yaml(
        tmp_path,
        CONFIG.replace("rate_limit: {messages: 0}", "rate_limit: {messages: 0}\n    queue_size: 1"),
    )
    clock = FakeClock(at(0).timestamp())
    intake = Intake(store, lambda targets: None)
    expirer = Expirer(store, intake, lambda: full, clock)
    post(intake, full, 0, prom_alert(-30, 40))  # one row waits: the queue is full
    clock.set(at(41).timestamp())
    assert expirer.sweep() == 0
    with store.reading() as tx:
        assert not tx.alertstate.listing("prom")[0].resolved
    with store.transaction() as tx:
        tx.outbox.delivered([r.id for r in tx.outbox.listing(limit=10)])
    intake.forget_cache()  # the queue depth is read again
    assert expirer.sweep() == 1
    with store.reading() as tx:
        assert [r.event_status for r in tx.outbox.listing(status=records.PENDING)] == ["resolved"]


def test_the_state_survives_a_restart(config: Config, tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "state")
    post(Intake(first, lambda targets: None), config, 0, prom_alert(-30, 40))
    first.close()
    again = SqliteStore(tmp_path / "state")
    try:
        clock = FakeClock(at(41).timestamp())
        assert Expirer(again, Intake(again, lambda t: None), lambda: config, clock).sweep() == 1
        assert statuses(again) == ["firing", "resolved"]
    finally:
        again.close()


def test_a_post_tells_its_alerts_in_the_order_posted(config: Config, store: Store) -> None:
    spec = config.inputs["prom"]
    assert isinstance(spec, PrometheusInput)
    alerts = [prom_alert(-30, 40, instance=name) for name in ("zeta", "alpha", "mid", "alpha")]
    assert len({label_fingerprint(a.labels) for a in alerts}) == 3
    with store.transaction() as tx:  # locked in fingerprint order, told in the order posted
        events = posted_events(tx, spec, alerts, at(0))
    assert [e.labels["instance"] for e in events] == ["zeta", "alpha", "mid", "alpha"]
