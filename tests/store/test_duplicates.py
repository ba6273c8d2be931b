"""Contract: the memory of Alertmanager notifications taken (duplicates absorbed in a window).

`claim(input, digest, expires, now)` is True the first time, False for a copy while the first is
remembered; atomic, so two replicas on one database cannot both take a notification."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from bridge.store.api import Store
from tests.store.values import NOW


def test_a_notification_is_new_once_per_input(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.duplicates.claim("am", "d1", NOW + 60, NOW) is True
        assert tx.duplicates.claim("am", "d1", NOW + 60, NOW + 1) is False
        assert tx.duplicates.claim("am", "d2", NOW + 60, NOW + 1) is True  # another notification
        assert tx.duplicates.claim("am-2", "d1", NOW + 60, NOW + 1) is True  # another input
        assert tx.duplicates.count() == 3


def test_a_copy_does_not_extend_the_window(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.duplicates.claim("am", "d", NOW + 60, NOW) is True
    with store.transaction() as tx:
        assert tx.duplicates.claim("am", "d", NOW + 90, NOW + 30) is False
    with store.transaction() as tx:
        assert tx.duplicates.claim("am", "d", NOW + 59.5, NOW + 59.5) is False  # within it still
        # Remembered until NOW + 60, the first copy's end: from then the same is news again.
        assert tx.duplicates.claim("am", "d", NOW + 120, NOW + 60) is True
        assert tx.duplicates.claim("am", "d", NOW + 180, NOW + 119) is False


def test_expired_notifications_of_every_input_are_forgotten(store: Store) -> None:
    with store.transaction() as tx:
        tx.duplicates.claim("am", "old", NOW + 10, NOW)
        tx.duplicates.claim("am-2", "old", NOW + 10, NOW)
        tx.duplicates.claim("am", "kept", NOW + 60, NOW)
    with store.transaction() as tx:
        assert tx.duplicates.claim("am", "new", NOW + 70, NOW + 10) is True
        assert tx.duplicates.count() == 2  # kept and new: both "old" rows went
    with store.reading() as tx:
        assert tx.duplicates.count() == 2


def test_a_claim_rolled_back_is_no_claim(store: Store) -> None:
    """A copy refused with 503 (nothing committed) leaves no trace: Alertmanager's retry of it
    is taken as the first."""
    with pytest.raises(RuntimeError), store.transaction() as tx:
        assert tx.duplicates.claim("am", "d", NOW + 60, NOW) is True
        raise RuntimeError("the commit failed")
    with store.transaction() as tx:
        assert tx.duplicates.claim("am", "d", NOW + 60, NOW) is True


def test_a_claim_is_seen_by_another_opening_of_the_state(
    store: Store, reopen: Callable[[], Store]
) -> None:
    with store.transaction() as tx:
        tx.duplicates.claim("am", "d", NOW + 60, NOW)
    other = reopen()  # a restart, or another replica on the same database
    with other.transaction() as tx:
        assert tx.duplicates.claim("am", "d", NOW + 60, NOW + 1) is False


def test_of_two_transactions_claiming_at_once_one_takes_it(
    store: Store, reopen: Callable[[], Store]
) -> None:
    """Two replicas given the two peers' copies at the same moment: the second claim, made while
    the first transaction is still open, must not find the notification new (it waits for the
    first to commit, or fails; it never answers True)."""
    other = reopen()
    first_claimed = threading.Event()
    second: list[bool | Exception] = []

    def race() -> None:
        first_claimed.wait(10)
        try:
            with other.transaction() as tx:
                second.append(tx.duplicates.claim("am", "d", NOW + 60, NOW))
        except Exception as exc:  # a backend may refuse rather than wait: never a second True
            second.append(exc)

    racer = threading.Thread(target=race)
    racer.start()
    with store.transaction() as tx:
        assert tx.duplicates.claim("am", "d", NOW + 60, NOW) is True
        first_claimed.set()
        time.sleep(0.2)  # the other transaction starts meanwhile (not a timing assertion)
    racer.join(20)
    assert not racer.is_alive()
    assert len(second) == 1 and second[0] is not True
