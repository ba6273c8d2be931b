"""Contract: each robot's counted calls and lockouts, and its turns taken at once by replicas."""

from __future__ import annotations

import threading
from collections.abc import Callable

from bridge.clock import FakeClock
from bridge.config.model import RateLimit
from bridge.delivery.ratelimit import next_slot
from bridge.delivery.turns import StoredWindows
from bridge.store.api import Store
from tests.store.values import NOW


def test_calls_are_kept_per_robot_and_old_ones_forgotten(store: Store) -> None:
    with store.transaction() as tx:
        tx.ratewindows.record_calls("r1", [NOW - 120, NOW - 30], NOW - 3600)
        tx.ratewindows.record_calls("r2", [NOW - 5], NOW - 3600)
        tx.ratewindows.record_calls("r1", [NOW - 1, NOW], NOW - 60)  # forgets r1's NOW-120
    with store.reading() as tx:
        assert tx.ratewindows.load("r1", NOW - 3600) == ([NOW - 30, NOW - 1, NOW], 0.0)
        assert tx.ratewindows.load("r1", NOW - 30) == ([NOW - 1, NOW], 0.0)  # after `since`
        assert tx.ratewindows.load("r2", 0.0) == ([NOW - 5], 0.0)
        assert tx.ratewindows.load("unknown", 0.0) == ([], 0.0)


def test_the_later_lockout_wins(store: Store) -> None:
    with store.transaction() as tx:
        tx.ratewindows.lock_out("r1", NOW + 600)
        tx.ratewindows.lock_out("r1", NOW + 300)  # an earlier end does not shorten it
        tx.ratewindows.lock_out("r2", NOW + 100)
    with store.reading() as tx:
        assert tx.ratewindows.load("r1", NOW)[1] == NOW + 600
        assert tx.ratewindows.load("r2", NOW)[1] == NOW + 100
    with store.transaction() as tx:
        tx.ratewindows.lock_out("r2", NOW + 900)
    with store.reading() as tx:
        assert tx.ratewindows.load("r2", NOW)[1] == NOW + 900


def test_a_fresh_store_has_nothing_to_adopt(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.ratewindows.adopt_legacy("target", "r1", NOW, 3600) == ([], 0.0)
        assert tx.ratewindows.load("r1", 0.0) == ([], 0.0)


def test_a_reservation_counts_until_its_outcome_replaces_or_drops_it(store: Store) -> None:
    with store.transaction() as tx:
        tx.ratewindows.record_calls("r1", [NOW - 10], NOW - 3600)
        tx.ratewindows.reserve("r1", "res-a", NOW + 10)  # in flight, counted at its timeout
        tx.ratewindows.reserve("r1", "res-b", NOW + 10)
        tx.ratewindows.lock_out("r1", NOW + 600)
    with store.transaction() as tx:
        calls, until = tx.ratewindows.window_for_update("r1", NOW - 60)
        assert calls == [(NOW - 10, None), (NOW + 10, "res-a"), (NOW + 10, "res-b")]
        assert until == NOW + 600
        assert tx.ratewindows.window_for_update("r2", NOW - 60) == ([], 0.0)
    with store.transaction() as tx:
        tx.ratewindows.record_calls("r1", [NOW + 1], NOW - 3600, settles="res-a")  # answered
        tx.ratewindows.record_calls("r1", [], NOW - 3600, settles="res-b")  # never counted
    with store.reading() as tx:
        assert tx.ratewindows.load("r1", NOW - 60) == ([NOW - 10, NOW + 1], NOW + 600)


def test_concurrent_takers_never_exceed_the_limit(
    store: Store, reopen: Callable[[], Store]
) -> None:
    """Replicas (each its own opening of the state, two threads each) take turns of one robot
    at once, all at the same moment: the store grants exactly the window's 20 calls."""
    clock = FakeClock(NOW)
    rate = RateLimit(20, 60.0)
    replicas = 3
    stores = [store, *(reopen() for _ in range(replicas - 1))]
    granted: list[str] = []
    errors: list[Exception] = []
    start = threading.Barrier(2 * replicas)

    def taker(opened: Store, worker: int) -> None:
        windows = StoredWindows(opened, clock)
        start.wait(10)
        for i in range(15):
            try:
                turn = windows.take(
                    "robot",
                    NOW - 61,
                    lambda calls, until: max(next_slot(rate, calls, NOW), until),
                    NOW,
                    f"{worker}-{i}",
                    NOW + 10,
                )
            except Exception as exc:  # a backend may refuse rather than wait: never a 21st
                errors.append(exc)
                continue
            if turn.granted:
                granted.append(f"{worker}-{i}")

    threads = [
        threading.Thread(target=taker, args=(stores[n % replicas], n)) for n in range(2 * replicas)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads)
    assert len(granted) == 20, (len(granted), errors)
    with store.reading() as tx:
        assert len(tx.ratewindows.load("robot", NOW - 61)[0]) == 20
