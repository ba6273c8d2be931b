"""Contract: escalations (store/escalations.py): started by a firing, stopped by an ack or the
resolution, started over by a firing after the resolution, each step claimed by one caller only
(a restart, or another replica sharing the database, finds it taken)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from bridge.store.api import Store
from bridge.store.escalations import ACK, RESOLVE
from bridge.store.records import Escalation
from tests.store.values import NOW

LABELS = {"alertname": "DiskFull", "instance": "db-1"}
STARTED = Escalation("r", "k1", "fp1", LABELS, NOW)


def _running(store: Store) -> list[Escalation]:
    with store.reading() as tx:
        return tx.escalations.running()


def test_a_firing_starts_one_escalation_kept_across_a_restart(
    reopen: Callable[[], Store],
) -> None:
    store = reopen()
    with store.transaction() as tx:
        assert tx.escalations.fired("r", "k1", "fp1", LABELS, NOW)
        assert not tx.escalations.fired("r", "k1", "fp1", LABELS, NOW + 60)  # a repeat: runs on
    assert _running(reopen()) == [STARTED]


def test_a_claimed_step_is_not_claimed_again_and_an_old_view_loses(
    reopen: Callable[[], Store],
) -> None:
    first, second = reopen(), reopen()  # two replicas (or a process and its restart)
    with first.transaction() as tx:
        tx.escalations.fired("r", "k1", "fp1", LABELS, NOW)
    [seen_by_first] = _running(first)
    [seen_by_second] = _running(second)
    with first.transaction() as tx:
        assert tx.escalations.advance(seen_by_first, 0, NOW + 10)
    with second.transaction() as tx:
        assert not tx.escalations.advance(seen_by_second, 0, NOW + 10)  # taken: not sent twice
        assert tx.escalations.advance(seen_by_second, 1, NOW + 30)  # the next step is free
    assert [e.steps_done for e in _running(reopen())] == [2]


def test_replicas_racing_for_the_same_step_one_wins(reopen: Callable[[], Store]) -> None:
    stores = [reopen() for _ in range(4)]
    with stores[0].transaction() as tx:
        tx.escalations.fired("r", "k1", "fp1", LABELS, NOW)
    [due] = _running(stores[0])
    wins: list[bool] = []
    start = threading.Barrier(len(stores))

    def claim(store: Store) -> None:
        start.wait()
        with store.transaction() as tx:
            wins.append(tx.escalations.advance(due, 0, NOW + 10))

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(wins) == [False, False, False, True]


def test_an_ack_stops_it_until_the_resolution_forgets_it(store: Store) -> None:
    with store.transaction() as tx:
        tx.escalations.fired("r", "k1", "fp1", LABELS, NOW)
    with store.transaction() as tx:
        assert tx.escalations.stop(STARTED, ACK, NOW + 5)
        assert not tx.escalations.stop(STARTED, ACK, NOW + 6)  # once
        assert not tx.escalations.advance(STARTED, 0, NOW + 10)  # no step after an ack
        assert not tx.escalations.fired("r", "k1", "fp1", LABELS, NOW + 20)  # still acked
    assert _running(store) == []
    with store.transaction() as tx:
        tx.escalations.resolved("r", "k1", NOW + 30)
    with store.reading() as tx:
        assert tx.escalations.ended() == []  # an acked one is not a stop by resolve
    with store.transaction() as tx:
        assert tx.escalations.fired("r", "k1", "fp1", LABELS, NOW + 40)  # news again


def test_a_resolution_stops_it_and_a_new_firing_starts_over(store: Store) -> None:
    with store.transaction() as tx:
        tx.escalations.fired("r", "k1", "fp1", LABELS, NOW)
        tx.escalations.advance(STARTED, 0, NOW + 10)
        tx.escalations.resolved("r", "k1", NOW + 20)
        assert not tx.escalations.advance(STARTED, 1, NOW + 30)
    with store.reading() as tx:
        assert tx.escalations.ended() == [Escalation("r", "k1", "fp1", LABELS, NOW, 1, RESOLVE)]
    with store.transaction() as tx:
        assert tx.escalations.fired("r", "k1", "fp1", LABELS, NOW + 40)
        assert not tx.escalations.advance(STARTED, 1, NOW + 50)  # the old firing's step
    assert _running(store) == [Escalation("r", "k1", "fp1", LABELS, NOW + 40)]


def test_a_resolved_one_is_forgotten_once(store: Store) -> None:
    with store.transaction() as tx:
        tx.escalations.fired("r", "k1", "fp1", LABELS, NOW)
        tx.escalations.fired("r", "k2", "fp2", {}, NOW + 1)
        tx.escalations.resolved("r", "k1", NOW + 5)
    with store.reading() as tx:
        [ended] = tx.escalations.ended()
    with store.transaction() as tx:
        assert tx.escalations.forget(ended)
        assert not tx.escalations.forget(ended)
        tx.escalations.drop("r")
    with store.reading() as tx:
        assert tx.escalations.ended() == [] and tx.escalations.running() == []
