"""Contract: the notification log, acknowledgements and aggregation groups, and replicas
deciding about one alert group or flushing one group at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from bridge.alerting.dedup import LogEntry
from bridge.store.api import Store, Tx
from bridge.store.records import Ack
from tests.store.values import NOW, event


def test_the_log_keeps_what_was_told_per_rule_and_key(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.alertlog.get_entry("r", "k") is None
        tx.alertlog.put_entry("r", "k", ["b", "a"], ["c"], NOW)
        tx.alertlog.put_entry("other", "k", ["x"], [], NOW + 1)
    with store.reading() as tx:
        assert tx.alertlog.get_entry("r", "k") == LogEntry(
            frozenset({"a", "b"}), frozenset({"c"}), NOW
        )
        assert tx.alertlog.get_entry("r", "other") is None
    with store.transaction() as tx:
        tx.alertlog.put_entry("r", "k", ["a"], ["b"], NOW + 5)  # replaces
        assert tx.alertlog.get_entry("r", "k") == LogEntry(
            frozenset({"a"}), frozenset({"b"}), NOW + 5
        )


def test_an_entry_with_nothing_firing_is_forgotten(store: Store) -> None:
    with store.transaction() as tx:
        tx.alertlog.put_entry("r", "k", ["a"], [], NOW)
        tx.alertlog.put_entry("r", "k", [], ["a"], NOW + 1)
    with store.reading() as tx:
        assert tx.alertlog.get_entry("r", "k") is None
        assert tx.alertlog.firing() == []


def test_firing_lists_groups_oldest_notification_first(store: Store) -> None:
    with store.transaction() as tx:
        tx.alertlog.put_entry("r", "late", ["a"], [], NOW + 2)
        tx.alertlog.put_entry("s", "early", ["b"], [], NOW)
    with store.reading() as tx:
        assert tx.alertlog.firing() == [("s", "early"), ("r", "late")]


def test_pruning_forgets_old_entries_and_old_acks(store: Store) -> None:
    with store.transaction() as tx:
        tx.alertlog.put_entry("r", "old", ["a"], [], NOW - 100)
        tx.alertlog.put_entry("r", "new", ["b"], [], NOW)
        tx.acks.acknowledge("old-fp", "ann", NOW - 100)
        tx.acks.acknowledge("new-fp", "bob", NOW)
        assert tx.alertlog.prune_entries(NOW - 50) == 1
    with store.reading() as tx:
        assert tx.alertlog.firing() == [("r", "new")]
        assert tx.acks.acknowledged_by("old-fp") is None
        assert tx.acks.acknowledged_by("new-fp") == "bob"


def test_an_ack_names_who_until_forgotten(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.acks.acknowledged_by("fp") is None
        tx.acks.acknowledge("fp", "ann", NOW)
        tx.acks.acknowledge("fp", "bob", NOW + 1)  # the latest wins
    with store.reading() as tx:
        assert tx.acks.acknowledged_by("fp") == "bob"
    with store.transaction() as tx:
        tx.acks.forget("fp")
        tx.acks.forget("never-acked")
    with store.reading() as tx:
        assert tx.acks.acknowledged_by("fp") is None


def test_a_group_holds_its_alerts_until_its_first_flush(store: Store) -> None:
    a, b = event("a"), event("b")
    with store.transaction() as tx:
        tx.groups.add("r", "k", {"team": "db"}, [("b", "firing", b)], NOW, 30)
        # Added to later: the first flush stays where the group's creation put it.
        tx.groups.add("r", "k", {"team": "db"}, [("a", "firing", a)], NOW + 10, 30)
        tx.groups.add("r", "a-later", {"team": "web"}, [("a", "firing", a)], NOW + 5, 30)
    with store.reading() as tx:
        assert tx.groups.due(NOW + 29) == []
        assert tx.groups.next_flush_at() == NOW + 30
        (group,) = tx.groups.due(NOW + 30)
        assert tx.groups.members("r", "k") == [b, a]  # in the order they last changed
    assert (group.rule, group.key, dict(group.labels), group.next_flush, group.flushed) == (
        "r",
        "k",
        {"team": "db"},
        NOW + 30,
        False,
    )
    with store.reading() as tx:
        assert [g.key for g in tx.groups.due(NOW + 100)] == ["k", "a-later"]  # earliest first


def test_an_alert_held_again_replaces_its_earlier_state(store: Store) -> None:
    firing, resolved = event("a"), event("a", "resolved")
    with store.transaction() as tx:
        tx.groups.add("r", "k", {}, [("a", "firing", firing)], NOW, 30)
        tx.groups.add("r", "k", {}, [("a", "resolved", resolved)], NOW + 1, 30)
    with store.reading() as tx:
        assert tx.groups.members("r", "k") == [resolved]


def test_after_a_flush_resolved_alerts_leave_and_the_rest_wait_the_interval(
    store: Store,
) -> None:
    with store.transaction() as tx:
        tx.groups.add(
            "r", "k", {}, [("a", "firing", event("a")), ("b", "resolved", event("b"))], NOW, 30
        )
        tx.groups.after_flush("r", "k", NOW + 30, 300)
    with store.reading() as tx:
        assert tx.groups.members("r", "k") == [event("a")]
        (group,) = tx.groups.due(NOW + 330)
        assert tx.groups.due(NOW + 329) == []
    assert group.flushed and group.next_flush == NOW + 330


def test_a_group_ends_when_its_last_alert_was_told_resolved(store: Store) -> None:
    with store.transaction() as tx:
        tx.groups.add("r", "k", {}, [("a", "resolved", event("a", "resolved"))], NOW, 30)
        tx.groups.after_flush("r", "k", NOW + 30, 300)
    with store.reading() as tx:
        assert tx.groups.due(NOW + 10_000) == [] and tx.groups.next_flush_at() is None


def test_a_dropped_group_is_gone_with_its_alerts(store: Store) -> None:
    with store.transaction() as tx:
        tx.groups.add("r", "k", {}, [("a", "firing", event("a"))], NOW, 30)
        tx.groups.add("r", "kept", {}, [("a", "firing", event("a"))], NOW, 30)
        tx.groups.drop("r", "k")
    with store.reading() as tx:
        assert tx.groups.members("r", "k") == []
        assert [g.key for g in tx.groups.due(NOW + 30)] == ["kept"]


def test_a_due_group_is_claimed_by_one_flush(store: Store, reopen: Callable[[], Store]) -> None:
    with store.transaction() as tx:
        tx.groups.add("r", "k", {}, [("a", "firing", event("a"))], NOW, 30)
        assert tx.groups.claim("r", "k", NOW + 29) is False  # not due yet
        assert tx.groups.claim("r", "gone", NOW + 30) is False
        assert tx.groups.claim("r", "k", NOW + 30) is True
        tx.groups.after_flush("r", "k", NOW + 30, 300)
    other = reopen()  # another replica saw it due at NOW + 30 too
    with other.transaction() as tx:
        assert tx.groups.claim("r", "k", NOW + 30) is False
        assert tx.groups.claim("r", "k", NOW + 330) is True


def test_of_two_replicas_flushing_a_group_at_once_one_claims_it(
    store: Store, reopen: Callable[[], Store]
) -> None:
    """The second claim, made while the first flush's transaction is open, waits for it and
    finds the group flushed (or fails); it never answers True."""
    with store.transaction() as tx:
        tx.groups.add("r", "k", {}, [("a", "firing", event("a"))], NOW, 30)
    second = _Racer(reopen(), lambda tx: tx.groups.claim("r", "k", NOW + 30))
    with store.transaction() as tx:
        assert tx.groups.claim("r", "k", NOW + 30) is True
        second.started.set()
        time.sleep(0.2)  # the other transaction starts meanwhile (not a timing assertion)
        tx.groups.after_flush("r", "k", NOW + 30, 300)
    assert second.result() is not True


def test_a_decision_waits_for_another_on_the_same_entry_and_reads_what_it_wrote(
    store: Store, reopen: Callable[[], Store]
) -> None:
    """Two replicas told the same new alert at once: the second reads the entry the first
    committed (so it sends nothing), never the empty log the first saw."""
    second = _Racer(reopen(), lambda tx: tx.alertlog.entry_for_update("r", "k"))
    with store.transaction() as tx:
        assert tx.alertlog.entry_for_update("r", "k") is None
        second.started.set()
        time.sleep(0.2)
        tx.alertlog.put_entry("r", "k", ["a"], [], NOW)
    assert second.result() == LogEntry(frozenset({"a"}), frozenset(), NOW)


class _Racer:
    """A transaction on another opening of the state, run in a thread once `started` is set."""

    def __init__(self, other: Store, body: Callable[[Tx], object]) -> None:
        self.started = threading.Event()
        self._out: list[object] = []
        self._thread = threading.Thread(target=self._run, args=(other, body))
        self._thread.start()

    def _run(self, other: Store, body: Callable[[Tx], object]) -> None:
        self.started.wait(10)
        try:
            with other.transaction() as tx:
                self._out.append(body(tx))
        except Exception as exc:  # a backend may refuse rather than wait
            self._out.append(exc)

    def result(self) -> object:
        self._thread.join(20)
        assert not self._thread.is_alive() and len(self._out) == 1
        return self._out[0]


def test_an_ack_made_on_one_replica_holds_on_another_at_once(
    store: Store, reopen: Callable[[], Store]
) -> None:
    """Acks have no cache: a decision reads them in its own transaction."""
    other = reopen()
    with store.transaction() as tx:
        tx.acks.acknowledge("fp", "ann", NOW)
    with other.transaction() as tx:
        assert tx.acks.acknowledged_by("fp") == "ann"
        tx.acks.forget("fp")
    with store.reading() as tx:
        assert tx.acks.acknowledged_by("fp") is None


def test_firing_alerts_are_every_entrys_firing_fingerprints(store: Store) -> None:
    with store.transaction() as tx:
        tx.alertlog.put_entry("r", "group", ["a", "b"], ["c"], NOW)
        tx.alertlog.put_entry("s", "single", ["d"], [], NOW)
        tx.alertlog.put_entry("s", "over", [], ["e"], NOW)  # all resolved: no entry
    with store.reading() as tx:
        assert tx.alertlog.firing_alerts() == frozenset({"a", "b", "d"})


def test_acks_are_listed_newest_first_with_who_and_when(store: Store) -> None:
    with store.reading() as tx:
        assert tx.acks.listing(10) == []
    with store.transaction() as tx:
        tx.acks.acknowledge("fp-old", "ann", NOW - 10)
        tx.acks.acknowledge("fp-new", "bob", NOW)
        tx.acks.acknowledge("fp-mid", "cai", NOW - 5)
    with store.reading() as tx:
        assert tx.acks.listing(10) == [
            Ack("fp-new", "bob", NOW),
            Ack("fp-mid", "cai", NOW - 5),
            Ack("fp-old", "ann", NOW - 10),
        ]
        assert [a.fingerprint for a in tx.acks.listing(2)] == ["fp-new", "fp-mid"]
