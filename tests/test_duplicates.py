"""What makes two Alertmanager notifications the same (bridge/pipeline/duplicates.py), as tables
of variations of one notification: those a second peer's copy may carry (the same), and those of
a notification that must reach the chat (another one). Hypothesis shuffles and rewrites copies."""

from __future__ import annotations

import copy
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.config.model import Config, HttpInput
from bridge.errors import StoreError
from bridge.inputs.alertmanager import parse_notification
from bridge.pipeline.duplicates import claim_for
from bridge.pipeline.intake import Intake
from bridge.store.sqlite import SqliteStore
from tests.harness import compile_yaml

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

Payload = dict[str, Any]


def spec(window: float = 60.0, *, split: bool = False, kind: str = "alertmanager") -> HttpInput:
    return HttpInput(
        name="am",
        type="alertmanager" if kind == "alertmanager" else "webhook",
        path="/alertmanager",
        token=None,
        max_body_bytes=1 << 20,
        split=split,
        dedup_window=window,
    )


def alert(instance: str, status: str = "firing", starts: str = "2026-12-01T11:50:00Z") -> Payload:
    return {
        "status": status,
        "labels": {"alertname": "DiskFull", "instance": instance, "severity": "warning"},
        "annotations": {"summary": f"disk of {instance} almost full"},
        "startsAt": starts,
        "endsAt": "2026-12-01T11:59:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus-a:9090/graph?g0.expr=disk",
        "fingerprint": f"fp-{instance}",
    }


def notification() -> Payload:
    """One notification of a group of three alerts, as the first peer sends it."""
    return {
        "version": "4",
        "receiver": "bridges",
        "status": "firing",
        "groupKey": '{}:{alertname="DiskFull"}',
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull", "severity": "warning"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager-0:9093",
        "truncatedAlerts": 0,
        "alerts": [alert("host-1"), alert("host-2"), alert("host-3")],
    }


def digest(body: Payload, input_spec: HttpInput | None = None) -> str:
    used = input_spec or spec()
    claim = claim_for(used, parse_notification(body, used, NOW), NOW.timestamp())
    assert claim is not None
    return claim.digest


def varied(change: Callable[[Payload], None]) -> Payload:
    body = notification()
    change(body)
    return body


def _set(path: tuple[Any, ...], value: Any) -> Callable[[Payload], None]:
    def change(body: Payload) -> None:
        where: Any = body
        for key in path[:-1]:
            where = where[key]
        where[path[-1]] = value

    return change


def _reorder(body: Payload) -> None:
    items = list(body.items())
    body.clear()
    body.update(reversed(items))


# What another peer's copy of the same notification may differ in.
SAME: dict[str, Callable[[Payload], None]] = {
    "receiver": _set(("receiver",), "bridge-replicas"),
    "externalURL": _set(("externalURL",), "http://alertmanager-1:9093"),
    "alerts in another order": lambda body: body["alerts"].reverse(),
    "an annotation": _set(("alerts", 0, "annotations", "summary"), "disk 97% full"),
    "commonAnnotations": _set(("commonAnnotations",), {"summary": "disks"}),
    "generatorURL": _set(("alerts", 1, "generatorURL"), "http://prometheus-b:9090/graph"),
    "the same instant in another zone": _set(
        ("alerts", 2, "startsAt"), "2026-12-01T19:50:00+08:00"
    ),
    "keys in another order": lambda body: _reorder(body),
}

# What a notification that must reach the chat differs in.
OTHER: dict[str, Callable[[Payload], None]] = {
    "resolved after firing": lambda body: body.update(
        status="resolved", alerts=[alert(f"host-{i}", "resolved") for i in (1, 2, 3)]
    ),
    "one alert resolved in the group": _set(("alerts", 0), alert("host-1", "resolved")),
    "firing again after it resolved": _set(("alerts", 1, "startsAt"), "2026-12-01T12:05:00.000Z"),
    "another endsAt": _set(("alerts", 2, "endsAt"), "2026-12-01T12:30:00Z"),
    "an alert joins": lambda body: body["alerts"].append(alert("host-4")),
    "an alert leaves": lambda body: body["alerts"].pop(),
    "another label value": _set(("alerts", 0, "labels", "severity"), "critical"),
    "another group": _set(("groupKey",), '{}:{alertname="DiskAlmostFull"}'),
    "other group labels": _set(("groupLabels",), {"alertname": "DiskFull", "dc": "b"}),
    "more alerts hidden by max_alerts": _set(("truncatedAlerts",), 2),
}


@pytest.mark.parametrize("change", SAME.values(), ids=SAME)
def test_a_peers_copy_is_the_same_notification(change: Callable[[Payload], None]) -> None:
    assert digest(varied(change)) == digest(notification())


@pytest.mark.parametrize("change", OTHER.values(), ids=OTHER)
def test_a_notification_with_news_is_another_one(change: Callable[[Payload], None]) -> None:
    assert digest(varied(change)) != digest(notification())


def test_split_inputs_claim_the_whole_notification_once() -> None:
    """One event per alert, one claim per body: the same digest as without split."""
    assert digest(notification(), spec(split=True)) == digest(notification())


@pytest.mark.parametrize(
    "input_spec",
    [spec(window=0), spec(kind="webhook", window=0)],
    ids=["dedup_window 0", "webhook"],
)
def test_no_claim_without_a_window(input_spec: HttpInput) -> None:
    events = parse_notification(notification(), spec(), NOW)
    assert claim_for(input_spec, events, NOW.timestamp()) is None


def test_the_claim_lasts_the_window_from_now() -> None:
    events = parse_notification(notification(), spec(), NOW)
    claim = claim_for(spec(window=90), events, NOW.timestamp())
    assert claim is not None
    assert (claim.input, claim.expires) == ("am", NOW.timestamp() + 90)


# -- generated -------------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=12)
_alerts = st.lists(
    st.builds(
        alert,
        st.text("abcdefgh0123456789-", min_size=1, max_size=6),
        st.sampled_from(["firing", "resolved"]),
        st.sampled_from(["2026-12-01T11:50:00Z", "2026-12-01T11:55:00Z"]),
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda a: a["fingerprint"],
)


@given(alerts=_alerts, order=st.randoms(use_true_random=False), receiver=_text, url=_text)
def test_copies_shuffled_and_relabelled_by_their_peer_are_the_same(
    alerts: list[Payload], order: Any, receiver: str, url: str
) -> None:
    first = notification()
    first["alerts"] = alerts
    copy_ = copy.deepcopy(first)
    order.shuffle(copy_["alerts"])
    copy_.update(receiver=receiver, externalURL=url)
    for one in copy_["alerts"]:
        one["annotations"] = {"summary": receiver}
    assert digest(copy_) == digest(first)


@given(alerts=_alerts, which=st.integers(min_value=0), field=st.sampled_from(["status", "start"]))
def test_any_alert_changing_status_or_start_makes_another_notification(
    alerts: list[Payload], which: int, field: str
) -> None:
    first = notification()
    first["alerts"] = alerts
    changed = copy.deepcopy(first)
    one = changed["alerts"][which % len(alerts)]
    if field == "status":
        one["status"] = "resolved" if one["status"] == "firing" else "firing"
    else:
        one["startsAt"] = "2026-12-01T11:59:59Z"
    assert digest(changed) != digest(first)


# -- the intake, against a real store --------------------------------------------------------

CONFIG = """
targets:
  ops: {type: robot, webhook: "http://127.0.0.1:1/robot/send?access_token=t"}
inputs:
  am: {type: alertmanager, path: /am}
  am-slow: {type: alertmanager, path: /am-slow, dedup_window: 5m}
  am-off: {type: alertmanager, path: /am-off, dedup_window: 0}
rules:
  - {name: all, targets: [ops]}
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    compiled: Config = compile_yaml(tmp_path_factory.mktemp("duplicates"), CONFIG)
    return compiled


def test_the_window_compiles_with_its_default(config: Config) -> None:
    windows = {name: i.dedup_window for name, i in config.http_inputs().items()}
    assert windows == {"am": 60.0, "am-slow": 300.0, "am-off": 0.0}


def peer_copy(body: Payload) -> Payload:
    """The same notification as the second peer sends it."""
    other = copy.deepcopy(body)
    other.update(receiver="bridge-b", externalURL="http://alertmanager-1:9093")
    other["alerts"].reverse()
    return other


# (seconds after NOW, input, what is posted) -> (messages queued, duplicates) for each post
TIMELINES: dict[str, list[tuple[float, str, str, tuple[int, int]]]] = {
    "a peer's copy is absorbed": [(0, "am", "first", (1, 0)), (15, "am", "copy", (0, 1))],
    "a third copy too": [
        (0, "am", "first", (1, 0)),
        (15, "am", "copy", (0, 1)),
        (30, "am", "first", (0, 1)),
    ],
    "the reminder after the window goes through": [
        (0, "am", "first", (1, 0)),
        (15, "am", "copy", (0, 1)),
        (60, "am", "first", (1, 0)),
        (61, "am", "copy", (0, 1)),
    ],
    "news within the window goes through": [
        (0, "am", "first", (1, 0)),
        (5, "am", "resolved", (1, 0)),
        (10, "am", "copy", (0, 1)),
    ],
    "a longer window": [(0, "am-slow", "first", (1, 0)), (240, "am-slow", "copy", (0, 1))],
    "without a window both go": [(0, "am-off", "first", (1, 0)), (1, "am-off", "copy", (1, 0))],
    "each input its own memory": [(0, "am", "first", (1, 0)), (1, "am-slow", "copy", (1, 0))],
}


@pytest.mark.parametrize("timeline", TIMELINES.values(), ids=TIMELINES)
def test_intake_absorbs_copies_within_the_window(
    config: Config, tmp_path: Path, timeline: list[tuple[float, str, str, tuple[int, int]]]
) -> None:
    bodies = {
        "first": notification(),
        "copy": peer_copy(notification()),
        "resolved": varied(OTHER["resolved after firing"]),
    }
    store = SqliteStore(tmp_path / "state")
    try:
        intake = Intake(store, lambda targets: None)
        for seconds, name, which, expected in timeline:
            spec_ = config.http_inputs()[name]
            when = NOW + timedelta(seconds=seconds)
            events = parse_notification(bodies[which], spec_, when)
            accepted = intake.accept(config, spec_, events, when)
            assert (accepted.messages, accepted.duplicate_notifications) == expected, seconds
        with store.reading() as tx:
            assert tx.outbox.pending_count() == sum(e[0] for *_, e in timeline)
        duplicates = sum(e[1] for *_, e in timeline)
        assert sum(intake.counters.duplicates.values()) == duplicates
        assert sum(intake.counters.events.values()) == len(timeline)  # every one accepted
    finally:
        store.close()


def test_a_batch_whose_commit_fails_counts_nothing_and_served_again_counts_once(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HTTP server serves a turn's requests in one store batch and serves each again when
    the batch's COMMIT fails (app/httpserver.py): the first try's counters, wake-ups and
    claims must vanish with it, or the retry would count twice and be taken for its own copy."""
    store = SqliteStore(tmp_path / "state")
    queued: list[set[str]] = []
    intake = Intake(store, lambda targets: queued.append(set(targets)))
    spec_ = config.http_inputs()["am"]
    posts = [notification(), peer_copy(notification())]

    def post_both() -> list[tuple[int, int]]:
        answers = []
        for body in posts:
            accepted = intake.accept(config, spec_, parse_notification(body, spec_, NOW), NOW)
            answers.append((accepted.messages, accepted.duplicate_notifications))
        return answers

    end_group = store.db._end_group

    def commit_fails(group: Any) -> None:
        group.error = sqlite3.OperationalError("disk I/O error")
        end_group(group)

    try:
        monkeypatch.setattr(store.db, "_end_group", commit_fails)
        with pytest.raises(StoreError), store.batch():
            assert post_both() == [(1, 0), (0, 1)]  # the copy is seen within the batch
        assert (intake.counters.events, intake.counters.duplicates, queued) == ({}, {}, [])
        with store.reading() as tx:
            assert tx.outbox.pending_count() == 0
        monkeypatch.undo()
        with store.batch():
            assert post_both() == [(1, 0), (0, 1)]  # not taken for a copy of the lost try
        assert sum(intake.counters.events.values()) == 2
        assert sum(intake.counters.duplicates.values()) == 1
        assert len(queued) == 1
        with store.reading() as tx:
            assert tx.outbox.pending_count() == 1
    finally:
        store.close()
