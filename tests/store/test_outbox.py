"""Contract: the outbox (api.Outbox) and the transaction boundary around it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bridge.store import records
from bridge.store.api import Store
from tests.store.values import NOW, delivery, enqueue


def ids(rows: list[records.Row]) -> list[str]:
    return [r.id for r in rows]


def test_a_queued_message_comes_back_as_it_went_in(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.outbox.enqueue([delivery("m1", with_event=True), delivery("m2")], NOW) == 2
    with store.reading() as tx:
        first, second = tx.outbox.due("ops", NOW, 10)
    sent = delivery("m1", with_event=True)
    assert (first.id, first.target, first.rule, first.fingerprint) == ("m1", "ops", "r", "fp-m1")
    assert first.message == sent.message and first.event == sent.event
    assert (first.status, first.attempts, first.parts_sent) == (records.PENDING, 0, 0)
    assert first.created_at == first.not_before == first.updated_at == NOW
    assert (first.reason, first.errcode, first.errmsg) == (None, None, None)
    assert second.event is None and first.event_status == "firing"


def test_due_rows_are_the_target_s_oldest_first_up_to_the_limit(store: Store) -> None:
    enqueue(store, "m", at=NOW - 10)
    enqueue(store, "z", "y", at=NOW - 30)  # same time: by id
    enqueue(store, "x", at=NOW - 40, target="dev")
    enqueue(store, "later", at=NOW + 5)
    with store.reading() as tx:
        assert ids(tx.outbox.due("ops", NOW, 10)) == ["y", "z", "m"]
        assert ids(tx.outbox.due("ops", NOW, 2)) == ["y", "z"]
        assert ids(tx.outbox.due("ops", NOW + 5, 10)) == ["y", "z", "m", "later"]
        assert ids(tx.outbox.due("dev", NOW, 10)) == ["x"]
        assert tx.outbox.due("nobody", NOW, 10) == []
        assert tx.outbox.next_due_at("ops") == NOW - 30
        assert tx.outbox.next_due_at("nobody") is None
        assert tx.outbox.pending_count() == 5
        assert tx.outbox.pending_count("ops") == 4
        assert tx.outbox.depth() == {"ops": (4, NOW - 30), "dev": (1, NOW - 40)}


def test_due_at_is_the_oldest_due_row_s_time_or_else_the_next_one(store: Store) -> None:
    enqueue(store, "old", at=NOW - 30)
    enqueue(store, "new", at=NOW - 10)
    enqueue(store, "soon", at=NOW + 20, target="dev")
    enqueue(store, "later", at=NOW + 40, target="dev")
    with store.transaction() as tx:  # the oldest is retried later: the next due is `new`
        tx.outbox.retry_later(["old"], NOW + 60, "network", None, "refused", NOW)
    with store.reading() as tx:
        assert tx.outbox.due_at("ops", NOW) == NOW - 10  # due now: the oldest due row's
        assert tx.outbox.due_at("ops", NOW - 20) == NOW - 10  # none due yet: the earliest
        assert tx.outbox.due_at("dev", NOW) == NOW + 20 == tx.outbox.next_due_at("dev")
        assert tx.outbox.due_at("nobody", NOW) is None


def test_a_retry_waits_counts_the_attempt_and_says_why(store: Store) -> None:
    enqueue(store, "a", "b")
    with store.transaction() as tx:
        tx.outbox.retry_later(["a"], NOW + 60, "network", None, "refused", NOW + 1)
        tx.outbox.retry_later(["a"], NOW + 90, "dingtalk_busy", -1, "busy", NOW + 2)
    with store.reading() as tx:
        assert ids(tx.outbox.due("ops", NOW + 59, 10)) == ["b"]
        assert tx.outbox.next_due_at("ops") == NOW
        (row,) = tx.outbox.find("a")
    assert (row.status, row.not_before, row.attempts) == (records.PENDING, NOW + 90, 2)
    assert (row.reason, row.errcode, row.errmsg, row.updated_at) == (
        "dingtalk_busy",
        -1,
        "busy",
        NOW + 2,
    )


def test_a_dead_letter_leaves_the_queue_keeps_why_and_can_be_revived(store: Store) -> None:
    enqueue(store, "a", "b")
    with store.transaction() as tx:
        tx.outbox.progress("a", 2, NOW + 1)
        tx.outbox.dead_letter(["a"], "dingtalk_config", 310000, "keywords", NOW + 2)
    with store.reading() as tx:
        assert ids(tx.outbox.due("ops", NOW + 100, 10)) == ["b"]
        assert tx.outbox.depth() == {"ops": (1, NOW)} and tx.outbox.dead_count() == 1
        (dead,) = tx.outbox.listing(records.DEAD)
    assert (dead.id, dead.reason, dead.errcode, dead.errmsg) == (
        "a",
        "dingtalk_config",
        310000,
        "keywords",
    )
    assert (dead.attempts, dead.parts_sent, dead.updated_at) == (1, 2, NOW + 2)
    with store.transaction() as tx:
        assert tx.outbox.revive(["a", "b", "unknown"], NOW + 10) == 1  # only dead letters
    with store.reading() as tx:
        (row,) = tx.outbox.find("a")
        assert tx.outbox.dead_count() == 0
    assert (row.status, row.not_before, row.attempts, row.parts_sent) == (
        records.PENDING,
        NOW + 10,
        0,
        0,
    )


def test_due_now_skips_the_backoff_of_pending_rows_only(store: Store) -> None:
    enqueue(store, "a", "b")
    with store.transaction() as tx:
        tx.outbox.retry_later(["a"], NOW + 600, "network", None, None, NOW)
        tx.outbox.dead_letter(["b"], "bad", None, None, NOW)
        tx.outbox.due_now(["a", "b"], NOW + 1)
    with store.reading() as tx:
        assert ids(tx.outbox.due("ops", NOW + 1, 10)) == ["a"]
        assert [r.status for r in tx.outbox.listing()] == [records.PENDING, records.DEAD]


def test_delivered_and_purged_rows_are_gone(store: Store) -> None:
    enqueue(store, "a", "b", "c", "d")
    with store.transaction() as tx:
        tx.outbox.delivered(["a"])
        tx.outbox.dead_letter(["b"], "bad", None, None, NOW)
        assert tx.outbox.purge(["b", "c", "missing"]) == 2  # dead or pending alike
    with store.reading() as tx:
        assert ids(tx.outbox.listing()) == ["d"]
        assert tx.outbox.find("a") == []


def test_listing_filters_by_status_and_target_oldest_first(store: Store) -> None:
    enqueue(store, "p1", at=NOW + 2)
    enqueue(store, "p2", at=NOW + 1)
    enqueue(store, "d0", at=NOW + 3, target="dev")
    with store.transaction() as tx:
        tx.outbox.dead_letter(["d0"], "bad", None, None, NOW)
    with store.reading() as tx:
        assert ids(tx.outbox.listing()) == ["p2", "p1", "d0"]
        assert ids(tx.outbox.listing(limit=1)) == ["p2"]
        assert ids(tx.outbox.listing(records.DEAD)) == ["d0"]
        assert ids(tx.outbox.listing(records.PENDING, "ops")) == ["p2", "p1"]
        assert ids(tx.outbox.listing(target="dev")) == ["d0"]


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ("a_1", ["x-a_1"]),  # `_` is literal, not any character
        ("ab1", ["x-ab1"]),
        ("AB1", ["x-ab1"]),  # ASCII case aside, as people paste ids
        ("%", ["x-%"]),
        ("x-", ["x-a_1", "x-ab1"]),  # at most two: enough to say "ambiguous"
        ("nothing", []),
    ],
)
def test_find_matches_a_literal_part_of_the_id(
    store: Store, part: str, expected: list[str]
) -> None:
    for i, id_ in enumerate(["x-a_1", "x-ab1", "x-%"]):
        enqueue(store, id_, at=NOW + i)
    with store.reading() as tx:
        assert ids(tx.outbox.find(part)) == expected


def test_a_transaction_that_raises_leaves_nothing_behind(store: Store) -> None:
    enqueue(store, "kept")
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.outbox.enqueue([delivery("lost")], NOW)
        tx.outbox.delivered(["kept"])
        tx.replays.claim("cb", "n", "d", NOW + 60, NOW)
        raise RuntimeError("the request failed half-way")
    with store.reading() as tx:
        assert ids(tx.outbox.listing()) == ["kept"]
        assert tx.replays.count() == 0


def test_what_committed_survives_reopening(store: Store, reopen: Callable[[], Store]) -> None:
    enqueue(store, "a")
    store.close()
    again = reopen()
    with again.reading() as tx:
        assert ids(tx.outbox.due("ops", NOW, 10)) == ["a"]
