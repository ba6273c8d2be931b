"""Contract: work notices between DingTalk's "accepted" and its "received by"."""

from __future__ import annotations

from bridge.store import records
from bridge.store.api import Store
from tests.store.values import NOW, enqueue


def sent(store: Store, task_id: int = 7, *ids: str) -> records.Task:
    """Queue `ids` (m1, m2 by default) and mark them taken by DingTalk as `task_id`."""
    ids = ids or ("m1", "m2")
    enqueue(store, ids[0], at=NOW - 20)
    enqueue(store, *ids[1:], at=NOW - 10)
    with store.transaction() as tx:
        rows = [r for r in tx.outbox.listing() if r.id in ids]
        tx.notices.awaiting(rows, "ops", task_id, NOW, NOW + 5)
        task = tx.notices.task_of(ids[0])
    assert task is not None
    return task


def test_a_notice_awaiting_its_result_is_sent_and_polled_later(store: Store) -> None:
    task = sent(store)
    assert (task.target, task.task_id, task.ids, task.rules) == ("ops", 7, ("m1", "m2"), ("r", "r"))
    assert (task.created_at, task.sent_at, task.next_poll, task.polls) == (
        NOW - 20,
        NOW,
        NOW + 5,
        0,
    )
    assert task.last_answer is None
    with store.reading() as tx:
        assert tx.outbox.due("ops", NOW + 100, 10) == []  # the sender leaves it
        assert {r.status for r in tx.outbox.listing()} == {records.SENT}
        assert tx.outbox.pending_count() == 0
        assert tx.notices.due(NOW + 4, 10) == []
        assert tx.notices.due(NOW + 5, 10) == [task]
        assert tx.notices.next_poll_at() == NOW + 5
        assert tx.notices.waiting() == {"ops": 1}
        assert tx.notices.task_of("m2") == task and tx.notices.task_of("m3") is None


def test_polls_are_counted_and_the_last_answer_kept(store: Store) -> None:
    task = sent(store)
    with store.transaction() as tx:
        tx.notices.poll_later(task, NOW + 10, '{"a": 1}')
        tx.notices.poll_later(task, NOW + 20, None)  # no new answer: the last one stays
    with store.reading() as tx:
        (again,) = tx.notices.due(NOW + 20, 10)
    assert (again.next_poll, again.polls, again.last_answer) == (NOW + 20, 2, '{"a": 1}')


def test_due_tasks_come_most_overdue_first_up_to_the_limit(store: Store) -> None:
    first = sent(store, 1, "a1")
    second = sent(store, 2, "b1")
    with store.transaction() as tx:
        tx.notices.poll_later(first, NOW + 9, None)
    with store.reading() as tx:
        assert [t.task_id for t in tx.notices.due(NOW + 9, 10)] == [2, 1]
        assert tx.notices.due(NOW + 9, 1) == [second]


def test_a_settled_notice_records_each_message_s_result(store: Store) -> None:
    task = sent(store)
    with store.transaction() as tx:
        tx.notices.settle(task, "partial", ["u1"], [("u2", "blocked")], "note", NOW + 30)
        tx.outbox.delivered(task.ids)
    with store.reading() as tx:
        assert tx.notices.due(NOW + 1000, 10) == [] and tx.notices.waiting() == {}
        assert tx.notices.task_of("m1") is None
        (result,) = tx.notices.results("m2")
        assert sorted(tx.notices.find_results("m")) == ["m1", "m2"]
        assert tx.notices.find_results("m1") == ["m1"] and tx.notices.find_results("x") == []
    assert result == records.Result(
        "m2", 7, "ops", "r", "partial", ("u1",), (("u2", "blocked"),), "note", NOW + 30
    )


def test_results_are_kept_a_week_and_listed_oldest_task_first(store: Store) -> None:
    first = sent(store, 1, "m1")
    with store.transaction() as tx:
        tx.notices.settle(first, "retry", [], [], None, NOW)
        tx.outbox.retry_later(first.ids, NOW, "rate_limited", None, None, NOW, was=records.SENT)
        tx.notices.awaiting(tx.outbox.listing(), "ops", 2, NOW + 1, NOW + 5)
        second = tx.notices.task_of("m1")
    assert second is not None
    with store.transaction() as tx:
        tx.notices.settle(second, "delivered", ["u1"], [], None, NOW + 2)
    with store.reading() as tx:
        assert [(r.task_id, r.outcome) for r in tx.notices.results("m1")] == [
            (1, "retry"),
            (2, "delivered"),
        ]
    other = sent(store, 3, "z1")
    with store.transaction() as tx:  # a settle a week later prunes what is older
        tx.notices.settle(other, "delivered", [], [], None, NOW + 2 + records.RESULTS_KEEP)
    with store.reading() as tx:
        assert [r.task_id for r in tx.notices.results("m1")] == [2]


def test_a_flow_controlled_notice_is_pending_again(store: Store) -> None:
    task = sent(store)
    with store.transaction() as tx:
        tx.notices.settle(task, "retry", [], [], None, NOW)
        tx.outbox.retry_later(
            task.ids, NOW + 60, "rate_limited", 143103, "x", NOW, was=records.SENT
        )
    with store.reading() as tx:
        rows = tx.outbox.due("ops", NOW + 60, 10)
    assert [(r.id, r.status, r.attempts) for r in rows] == [
        ("m1", records.PENDING, 1),
        ("m2", records.PENDING, 1),
    ]
