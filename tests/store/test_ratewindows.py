"""Contract: each robot's counted calls and lockouts."""

from __future__ import annotations

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
