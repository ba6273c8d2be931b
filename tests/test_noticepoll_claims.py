"""The work-notice poller's claims (one replica polls a task at a time): another poller finds
nothing while a task is polled, and an answer that comes after the claim was lost to another
poller records nothing and leaves the outbox rows to it. tests/test_noticepoll.py's fakes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.clock import FakeClock
from bridge.delivery.claims import DEFAULT_LEASE
from bridge.store import records
from bridge.store.api import Store
from tests.test_noticepoll import T0, Answers, outbox_row, poller, result, results, sent, store

__all__ = ["store"]  # the fixture, used by the tests below

NOBODY = result(invalid_user_id_list=["alice", "bob"])  # final: a dead letter


class During(Answers):
    """Answers as Answers does, after running `meanwhile` while the call is in flight."""

    def __init__(self, meanwhile: Callable[[], None], *answers: dict[str, Any]) -> None:
        super().__init__(*answers)
        self.meanwhile = meanwhile

    def get_send_result(self, target: Any, task_id: int) -> dict[str, Any]:
        self.meanwhile()
        return super().get_send_result(target, task_id)


def test_a_task_being_polled_is_not_polled_by_another_replica(store: Store) -> None:
    clock = FakeClock(T0)
    sent(store, ["m1"], 11)
    clock.advance(1)
    other_client = Answers()
    other = poller(store, other_client, clock)
    polled_meanwhile: list[int] = []
    first = poller(store, During(lambda: polled_meanwhile.append(other.step()), NOBODY), clock)
    assert first.step() == 1
    assert polled_meanwhile == [0] and other_client.asked == []
    row = outbox_row(store, "m1")
    assert row is not None and row.status == records.DEAD


def test_an_answer_after_the_claim_was_lost_changes_nothing(store: Store) -> None:
    clock = FakeClock(T0)
    sent(store, ["m1"], 11)
    clock.advance(1)

    def stall_and_be_overtaken() -> None:
        clock.advance(DEFAULT_LEASE + 1)  # this call outlasts the lease ...
        now = clock.time()
        with store.transaction() as tx:  # ... and another replica polls and settles the task
            [task] = tx.notices.claim("another", now, now + DEFAULT_LEASE, 10)
            assert tx.notices.settle(task, "retry", [], [], "flow-controlled", now, owner="another")
            tx.outbox.retry_later(
                task.ids, now + 60, "rate_limited", 143103, "flow", now, was="sent"
            )

    first = poller(store, During(stall_and_be_overtaken, NOBODY), clock)
    assert first.step() == 1
    row = outbox_row(store, "m1")
    assert row is not None
    assert (row.status, row.reason) == (records.PENDING, "rate_limited")  # the other's outcome
    assert [r.outcome for r in results(store, "m1")] == ["retry"]
    assert first.stats.outcomes == {}
