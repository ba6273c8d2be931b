"""The console's index of the alerts this process saw firing (bridge/app/firing.py): fed with
committed decisions, bounded, read against the notification log's firing fingerprints, and
shared with the other workers of `server.workers` (each reads the others' back)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given as generated
from hypothesis import strategies as st

from bridge.alerting import matchers
from bridge.alerting.dedup import NotifyReason
from bridge.alerting.silences import Silence
from bridge.app.firing import FiringIndex, SeenAlert, from_shared, latest_of, matching
from bridge.model import Alert, Event
from bridge.pipeline.decision import (
    Decision,
    EventDecision,
    LogWrite,
    NotSentAgain,
    Queued,
    Silenced,
)
from tests.store.values import NOW, event


def alert(fingerprint: str, status: str = "firing", **labels: str) -> Alert:
    return Alert(
        status="resolved" if status == "resolved" else "firing",
        labels={"alertname": "DiskFull", **labels},
        annotations={},
        starts_at=datetime.fromtimestamp(NOW, UTC),
        ends_at=None,
        generator_url="",
        fingerprint=fingerprint,
    )


def am_event(*alerts: Alert) -> Event:
    return replace(event("group-fp"), alerts=alerts)


def queued(rule: str) -> Queued:
    entry = LogWrite(rule, "k", frozenset(), frozenset(), NOW)
    return Queued(rule, "k", NotifyReason.FIRST, entry, ())


def decided(one: Event, *rules: str) -> Decision:
    return Decision((EventDecision(one, one, (), tuple(queued(r) for r in rules)),))


ALL = frozenset({"a1", "a2", "a3", "solo"})


def test_an_alertmanager_events_alerts_are_known_by_their_own_fingerprints() -> None:
    index = FiringIndex()
    index.note(decided(am_event(alert("a1", host="db1"), alert("a2", host="db2")), "disk"), NOW)
    seen = {a.fingerprint: a for a in index.firing(ALL)}
    assert set(seen) == {"a1", "a2"}
    assert seen["a1"].labels == {"alertname": "DiskFull", "host": "db1"}
    assert seen["a1"].rules == ("disk",)
    assert seen["a1"].input == "am"
    assert seen["a1"].seen_at == NOW


def test_an_event_without_alerts_is_known_by_its_fingerprint() -> None:
    index = FiringIndex()
    index.note(decided(event("solo", service="pay"), "web"), NOW)
    [seen] = index.firing(ALL)
    assert (seen.fingerprint, seen.labels["service"]) == ("solo", "pay")


def test_a_resolved_alert_leaves_the_index() -> None:
    index = FiringIndex()
    index.note(decided(am_event(alert("a1"), alert("a2")), "disk"), NOW)
    index.note(decided(am_event(alert("a1", "resolved"), alert("a2")), "disk"), NOW + 1)
    assert [a.fingerprint for a in index.firing(ALL)] == ["a2"]
    index.note(decided(event("a2", "resolved")), NOW + 2)  # an event's own resolution too
    assert index.firing(ALL) == []


def test_the_alerts_known_are_those_seen_firing_and_not_seen_resolving() -> None:
    index = FiringIndex()
    index.note(decided(am_event(alert("a1"), alert("a2"), alert("a3")), "disk"), NOW)
    index.note(decided(am_event(alert("a2", "resolved")), "disk"), NOW + 1)
    # Whatever the log says: a1 and a3 are known with their labels, a2 is gone.
    assert {a.fingerprint for a in index.seen()} == {"a1", "a3"}
    assert [a.fingerprint for a in index.firing(frozenset({"a1"}))] == ["a1"]


def test_only_what_the_notification_log_says_fires_is_listed() -> None:
    index = FiringIndex()
    index.note(decided(am_event(alert("a1"), alert("a2")), "disk"), NOW)
    # a2 resolved through another replica, or its entry was pruned: the log no longer has it
    assert [a.fingerprint for a in index.firing(frozenset({"a1"}))] == ["a1"]


def test_latest_seen_first_and_the_least_recently_seen_go_past_the_limit() -> None:
    index = FiringIndex(limit=2)
    for n, fingerprint in enumerate(["a1", "a2", "a3"]):
        index.note(decided(am_event(alert(fingerprint)), "disk"), NOW + n)
    assert len(index) == 2
    assert [a.fingerprint for a in index.firing(ALL)] == ["a3", "a2"]
    index.note(decided(am_event(alert("a2")), "disk"), NOW + 5)  # seen again: newest
    index.note(decided(am_event(alert("a1")), "disk"), NOW + 6)
    assert [a.fingerprint for a in index.firing(ALL)] == ["a1", "a2"]


def test_a_silenced_alert_stays_known_with_the_rules_it_matched_before() -> None:
    index = FiringIndex()
    index.note(decided(am_event(alert("a1")), "disk"), NOW)
    silence = Silence("s1", (matchers.equal("alertname", "DiskFull"),), NOW, NOW + 60)
    one = am_event(alert("a1"))
    index.note(Decision((EventDecision(one, None, (Silenced("a1", silence),), ()),)), NOW + 1)
    [seen] = index.firing(ALL)
    assert (seen.rules, seen.seen_at) == (("disk",), NOW + 1)


def test_rules_are_listed_once_each() -> None:
    index = FiringIndex()
    again = NotSentAgain("disk", "k", "a1", None)
    one = am_event(alert("a1"))
    index.note(Decision((EventDecision(one, one, (), (queued("disk"), again)),)), NOW)
    assert index.firing(ALL)[0].rules == ("disk",)


def test_matching_needs_every_matcher() -> None:
    index = FiringIndex()
    index.note(
        decided(am_event(alert("a1", host="db1"), alert("a2", host="web1")), "disk"),
        NOW,
    )
    firing = index.firing(ALL)
    table = [
        ([matchers.parse("alertname=DiskFull")], {"a1", "a2"}),
        ([matchers.parse("alertname=DiskFull"), matchers.parse("host=~db.*")], {"a1"}),
        ([matchers.parse("host!~db.*")], {"a2"}),
        ([matchers.parse("alertname=Other")], set()),
    ]
    for given, expected in table:
        assert {a.fingerprint for a in matching(firing, tuple(given))} == expected, given


# -- shared between workers (app/siblings.py writes `shared`, a sibling reads it back) ---------


def test_a_sibling_reads_back_the_alerts_a_worker_shares_latest_first() -> None:
    index = FiringIndex()
    index.note(decided(am_event(alert("a1", host="db1")), "disk"), NOW)
    index.note(decided(am_event(alert("a2", host="db2")), "disk", "page"), NOW + 5)
    shared = json.loads(json.dumps(index.shared()))  # as the file holds it
    assert from_shared(shared) == index.firing(ALL)
    assert [a.fingerprint for a in from_shared(index.shared(limit=1))] == ["a2"]


def test_every_note_changes_the_version_a_worker_rewrites_its_share_on() -> None:
    index = FiringIndex()
    before = index.version
    index.note(decided(am_event(alert("a1")), "disk"), NOW)
    assert index.version != before


def test_several_workers_alerts_merge_once_each_as_last_seen_and_only_if_firing() -> None:
    mine = [SeenAlert("a1", {"host": "old"}, ("disk",), "am", NOW)]
    theirs = [
        SeenAlert("a1", {"host": "new"}, ("disk",), "am", NOW + 9),
        SeenAlert("a2", {"host": "db2"}, ("disk",), "am", NOW + 1),
        SeenAlert("gone", {"host": "db9"}, ("disk",), "am", NOW + 20),  # resolved since
    ]
    merged = latest_of([mine, theirs], ALL)
    assert [(a.fingerprint, a.labels["host"]) for a in merged] == [("a1", "new"), ("a2", "db2")]


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"a1": 1},
        [["a1", {"k": "v"}, ["r"], "am"]],  # too short
        [["a1", {"k": 1}, ["r"], "am", 1.0]],  # a label that is not a string
        [["a1", {"k": "v"}, "r", "am", 1.0]],
        [["a1", {"k": "v"}, ["r"], None, 1.0]],
        [["a1", {"k": "v"}, ["r"], "am", True]],
        [[1, {"k": "v"}, ["r"], "am", 1.0]],
    ],
)
def test_a_malformed_share_gives_no_alert(data: Any) -> None:
    assert from_shared(data) == []


@generated(
    st.lists(
        st.lists(
            st.none() | st.text(max_size=4) | st.floats(allow_nan=False) | st.booleans()
            | st.dictionaries(st.text(max_size=3), st.text(max_size=3) | st.integers())
            | st.lists(st.text(max_size=3) | st.integers(), max_size=3),
            max_size=6,
        ),
        max_size=6,
    )
)  # fmt: skip
def test_any_share_gives_well_formed_alerts_and_never_raises(data: list[Any]) -> None:
    for seen in from_shared(data):
        assert isinstance(seen.fingerprint, str) and isinstance(seen.seen_at, float)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in seen.labels.items())
