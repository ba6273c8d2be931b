"""Contract: app-robot sends DingTalk took, kept after their outbox row (for recall and show)."""

from __future__ import annotations

from collections.abc import Callable

from bridge.store.api import Store
from bridge.store.records import RESULTS_KEEP, AppRobotSend
from tests.store.values import NOW

GROUP = AppRobotSend("m1", "pqk-1", "grp", "r", "dingbot", "cid==", (), (), NOW)
OTO = AppRobotSend(
    "m1", "pqk-2", "people", "r", "dingbot", None, ("u1", "u2"), (("u2", "invalid_user"),), NOW + 1
)


def test_sends_are_kept_per_message_in_order(reopen: Callable[[], Store]) -> None:
    store = reopen()
    with store.transaction() as tx:
        tx.appsends.record([OTO, GROUP], NOW + 1)
        tx.appsends.record([AppRobotSend("m2", "pqk-3", "grp", "r", "b", "c", (), (), NOW)], NOW)
    with reopen().reading() as tx:  # what a restart (or another replica) sees
        assert tx.appsends.of("m1") == [GROUP, OTO]
        assert tx.appsends.of("nope") == []
        assert tx.appsends.find("m") == ["m1", "m2"] and tx.appsends.find("2") == ["m2"]


def test_a_recall_and_a_failed_recall_are_recorded(store: Store) -> None:
    with store.transaction() as tx:
        tx.appsends.record([GROUP, OTO], NOW + 1)
        tx.appsends.recall_failed([("pqk-1", "too old")])
        tx.appsends.recalled(["pqk-2"], NOW + 5)
    with store.reading() as tx:
        group, oto = tx.appsends.of("m1")
    assert (group.recalled_at, group.recall_note) == (None, "too old")
    assert (oto.recalled_at, oto.recall_note) == (NOW + 5, None)
    assert oto.refused == (("u2", "invalid_user"),) and oto.users == ("u1", "u2")


def test_recording_a_send_again_keeps_one_and_old_ones_go(store: Store) -> None:
    with store.transaction() as tx:
        tx.appsends.record([GROUP], NOW)
        tx.appsends.record([GROUP], NOW)
    with store.reading() as tx:
        assert len(tx.appsends.of("m1")) == 1
    later = AppRobotSend("m9", "pqk-9", "grp", "r", "b", "c", (), (), NOW + RESULTS_KEEP + 1)
    with store.transaction() as tx:
        tx.appsends.record([later], later.sent_at)
    with store.reading() as tx:
        assert tx.appsends.of("m1") == [] and len(tx.appsends.of("m9")) == 1


def test_singles_are_a_rules_lone_sends_not_recalled_since_a_time(store: Store) -> None:
    def send(id_: str, key: str, at: float, rule: str = "r") -> AppRobotSend:
        return AppRobotSend(id_, key, "grp", rule, "b", "c", (), (), at)

    with store.transaction() as tx:
        tx.appsends.record(
            [
                send("old", "k0", NOW - 100),
                send("s1", "k1", NOW),
                send("s2", "k2", NOW + 1),
                send("other-rule", "k3", NOW + 1, rule="x"),
                send("d1", "kd", NOW + 2),  # a digest: one key, two messages
                send("d2", "kd", NOW + 2),
            ],
            NOW + 2,
        )
        tx.appsends.recalled(["k2"], NOW + 3)
    with store.reading() as reads:
        assert [s.id for s in reads.appsends.singles("grp", "r", NOW - 10)] == ["s1"]
        assert [s.id for s in reads.appsends.singles("grp", "r", NOW - 1000)] == ["old", "s1"]
        assert reads.appsends.singles("elsewhere", "r", 0) == []
