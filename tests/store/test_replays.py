"""Contract: the memory of signed requests already taken."""

from __future__ import annotations

from bridge.store.api import Store
from bridge.store.records import Seen
from tests.store.values import NOW


def test_a_key_is_new_once_then_the_same_or_another_request(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.replays.claim("cb", "n1", "d1", NOW + 60, NOW) is Seen.NEW
        assert tx.replays.claim("cb", "n1", "d1", NOW + 60, NOW) is Seen.SAME
        assert tx.replays.claim("cb", "n1", "d2", NOW + 60, NOW) is Seen.OTHER
        assert tx.replays.claim("chat", "n1", "d1", NOW + 60, NOW) is Seen.NEW  # per input
        assert tx.replays.count() == 2


def test_a_key_is_forgotten_once_it_expired_of_any_input(store: Store) -> None:
    with store.transaction() as tx:
        tx.replays.claim("cb", "old", "d", NOW + 10, NOW)
        tx.replays.claim("chat", "old", "d", NOW + 10, NOW)
        tx.replays.claim("cb", "kept", "d", NOW + 60, NOW)
    with store.transaction() as tx:
        assert tx.replays.claim("cb", "old", "x", NOW + 10, NOW + 10) is Seen.OTHER  # not yet
        assert tx.replays.claim("cb", "new", "d", NOW + 70, NOW + 11) is Seen.NEW
        assert tx.replays.count() == 2  # kept and new: both "old" rows went
        assert tx.replays.claim("cb", "old", "x", NOW + 80, NOW + 11) is Seen.NEW


def test_taken_reads_without_claiming(store: Store) -> None:
    with store.reading() as tx:
        assert not tx.replays.taken("-/act", "k", NOW)
    with store.transaction() as tx:
        assert tx.replays.claim("-/act", "k", "k", NOW + 60, NOW) is Seen.NEW
    with store.reading() as tx:
        assert tx.replays.taken("-/act", "k", NOW + 60)
        assert not tx.replays.taken("-/act", "k", NOW + 61)  # expired: as good as gone
        assert not tx.replays.taken("cb", "k", NOW)  # per input
        assert tx.replays.count() == 1
