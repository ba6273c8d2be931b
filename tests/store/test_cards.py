"""Contract: interactive cards DingTalk delivered (store/cards.py), kept after their outbox row:
found by outTrackId (a click), by alert while not settled (an ack, a resolution)."""

from __future__ import annotations

from collections.abc import Callable

from bridge.store.api import Store
from bridge.store.records import RESULTS_KEEP, Card
from tests.store.values import NOW

GROUP = Card("m1", "m1", "grp", "r", "fp1", {"alertname": "DiskFull", "instance": "db-1"}, NOW)
ALICE = Card("m2.alice", "m2", "people", "r", "fp1", {"alertname": "DiskFull"}, NOW + 1)
OTHER = Card("m3", "m3", "grp", "r", "fp2", {}, NOW + 2)


def test_a_card_is_found_by_its_track_and_by_its_alert(reopen: Callable[[], Store]) -> None:
    store = reopen()
    with store.transaction() as tx:
        tx.cards.record([ALICE, GROUP, OTHER], NOW + 2)
    with reopen().reading() as tx:  # what a restart (or another replica) sees
        assert tx.cards.get("m2.alice") == ALICE
        assert tx.cards.get("m1") == GROUP
        assert tx.cards.get("nope") is None
        assert tx.cards.live("fp1") == [GROUP, ALICE]
        assert tx.cards.live("fp9") == []


def test_settled_cards_are_no_longer_live_but_still_found(store: Store) -> None:
    with store.transaction() as tx:
        tx.cards.record([GROUP, ALICE], NOW)
        tx.cards.settle(["m1"], NOW + 5)
    with store.reading() as tx:
        assert tx.cards.live("fp1") == [ALICE]
        assert tx.cards.get("m1") == GROUP  # a late click still finds its message


def test_recording_a_card_again_keeps_one_and_old_ones_go(store: Store) -> None:
    with store.transaction() as tx:
        tx.cards.record([GROUP], NOW)
        tx.cards.record([GROUP], NOW)
    with store.reading() as tx:
        assert tx.cards.live("fp1") == [GROUP]
    later = Card("m9", "m9", "grp", "r", "fp9", {}, NOW + RESULTS_KEEP + 1)
    with store.transaction() as tx:
        tx.cards.record([later], later.sent_at)
    with store.reading() as tx:
        assert tx.cards.get("m1") is None and tx.cards.get("m9") == later
