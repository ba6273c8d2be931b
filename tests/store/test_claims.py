"""Contract: claims (Outbox.claim, Notices.claim): several claimers share one outbox, and no two
hold a row at once; a lease that ends frees the rows; an outcome recorded by a claimer that lost
its rows to another changes nothing. Each claimer is a separate store opened on the same state
(what another replica, or another process, has)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from bridge.store import records
from bridge.store.api import Store
from tests.store.values import NOW, enqueue

LEASE = 30.0
A, B = "replica-a", "replica-b"


def ids(rows: Sequence[records.Row | records.StoredRow]) -> list[str]:
    return [r.id for r in rows]


def claim(
    store: Store, owner: str, now: float = NOW, limit: int = 10, target: str = "ops"
) -> list[str]:
    with store.transaction() as tx:
        return ids(tx.outbox.claim(target, owner, now, now + LEASE, limit))


def row(store: Store, id_: str) -> records.Row | None:
    with store.reading() as tx:
        found = tx.outbox.find(id_)
    return found[0] if found else None


def test_a_claim_takes_the_due_rows_oldest_first_up_to_the_limit(store: Store) -> None:
    enqueue(store, "m", at=NOW - 10)
    enqueue(store, "z", "y", at=NOW - 30)
    enqueue(store, "later", at=NOW + 5)
    enqueue(store, "x", at=NOW - 40, target="dev")
    with store.transaction() as tx:
        rows = tx.outbox.claim("ops", A, NOW, NOW + LEASE, 2)
    assert ids(rows) == ["y", "z"]
    first = rows[0].decode()  # as stored: decoded after the claim commits
    assert first.message.title == "title y" and first.status == records.PENDING
    assert claim(store, A, limit=10) == ["y", "z", "m"]  # its own again, and the next
    with store.reading() as tx:
        assert tx.outbox.claimed(NOW) == {"ops": 3}
        assert tx.outbox.claimed(NOW + LEASE) == {}  # the lease is over by then
        assert tx.outbox.pending_count("ops") == 4  # claimed rows are still pending


def test_rows_another_holds_are_neither_claimed_nor_due_until_the_lease_ends(
    reopen: Callable[[], Store],
) -> None:
    first, second = reopen(), reopen()
    enqueue(first, "a", "b", "c")
    assert claim(first, A, limit=2) == ["a", "b"]
    assert claim(second, B) == ["c"]
    assert claim(second, B, now=NOW + LEASE - 1) == ["c"]  # a and b are A's still
    with second.reading() as tx:
        assert tx.outbox.due("ops", NOW + 1, 10) == []
        assert tx.outbox.next_due_at("ops") == NOW  # due, but held: see claim
    # A died: its lease ends, and B takes its rows.
    assert claim(second, B, now=NOW + LEASE) == ["a", "b", "c"]
    assert claim(first, A, now=NOW + LEASE + 1) == []


def test_an_outcome_from_a_claimer_that_lost_its_rows_changes_nothing(
    reopen: Callable[[], Store],
) -> None:
    first, second = reopen(), reopen()
    enqueue(first, "a", "b", "c")
    assert claim(first, A) == ["a", "b", "c"]
    later = NOW + LEASE + 1
    assert claim(second, B, now=later) == ["a", "b", "c"]  # A stalled past its lease
    with first.transaction() as tx:
        tx.outbox.progress("a", 2, later, owner=A)
        tx.outbox.retry_later(["b"], later + 60, "network", None, "refused", later, owner=A)
        tx.outbox.dead_letter(["c"], "dingtalk_config", 310000, "keywords", later, owner=A)
        assert tx.outbox.renew(["a", "b"], A, later + LEASE) == []
    for id_ in "abc":
        kept = row(second, id_)
        assert kept is not None
        assert (kept.status, kept.parts_sent, kept.attempts, kept.reason) == (
            records.PENDING,
            0,
            0,
            None,
        )
    with second.reading() as tx:
        assert tx.outbox.claimed(later) == {"ops": 3}  # B's, still
    # B's own outcomes apply; a delivery applies whoever holds the row (DingTalk has it).
    with second.transaction() as tx:
        tx.outbox.progress("a", 1, later, owner=B)
        tx.outbox.retry_later(["b"], later + 60, "network", None, "refused", later, owner=B)
    with first.transaction() as tx:
        tx.outbox.delivered(["c"])
    a, b = row(second, "a"), row(second, "b")
    assert a is not None and a.parts_sent == 1
    assert b is not None and (b.attempts, b.not_before) == (1, later + 60)
    assert row(second, "c") is None


def test_an_outcome_ends_the_claim(store: Store) -> None:
    enqueue(store, "a", "b", "c")
    assert claim(store, A) == ["a", "b", "c"]
    with store.transaction() as tx:
        tx.outbox.retry_later(["a"], NOW + 5, "network", None, None, NOW, owner=A)
        tx.outbox.dead_letter(["b"], "bad", None, None, NOW, owner=A)
        tx.outbox.delivered(["c"])
    with store.reading() as tx:
        assert tx.outbox.claimed(NOW) == {}
    assert claim(store, B, now=NOW + 5) == ["a"]  # unclaimed: anyone takes it when due
    with store.transaction() as tx:
        assert tx.outbox.revive(["b"], NOW + 6) == 1
    assert claim(store, B, now=NOW + 6) == ["a", "b"]


def test_renewing_keeps_the_rows_past_the_first_lease(reopen: Callable[[], Store]) -> None:
    first, second = reopen(), reopen()
    enqueue(first, "a", "b")
    assert claim(first, A, limit=1) == ["a"]
    with first.transaction() as tx:
        # b is not A's (nor anyone's): renewing it makes it A's; a row gone is not renewed.
        assert tx.outbox.renew(["a", "b", "gone"], A, NOW + 2 * LEASE) == ["a", "b"]
    assert claim(second, B, now=NOW + LEASE + 1) == []
    assert claim(second, B, now=NOW + 2 * LEASE) == ["a", "b"]


def test_a_release_makes_the_rows_claimable_at_once(reopen: Callable[[], Store]) -> None:
    first, second = reopen(), reopen()
    enqueue(first, "a", "b", "c")
    enqueue(first, "d", target="dev")
    assert claim(first, A) == ["a", "b", "c"] and claim(first, A, target="dev") == ["d"]
    with first.transaction() as tx:
        assert tx.outbox.release(A, ["b"]) == 1
        assert tx.outbox.release(B) == 0  # B holds nothing
    assert claim(second, B) == ["b"]
    with first.transaction() as tx:
        assert tx.outbox.release(A) == 3  # all of A's: a, c and d
        assert tx.outbox.release(A, []) == 0
    assert claim(second, B) == ["a", "b", "c"]


def test_notice_tasks_are_claimed_by_one_poller_at_a_time(reopen: Callable[[], Store]) -> None:
    first, second = reopen(), reopen()
    enqueue(first, "m1", "m2")
    with first.transaction() as tx:
        rows = tx.outbox.listing()
        tx.notices.awaiting(rows[:1], "ops", 1, NOW, NOW + 1)
        tx.notices.awaiting(rows[1:], "ops", 2, NOW, NOW + 2)
        (claimed,) = tx.notices.claim(A, NOW + 1, NOW + 1 + LEASE, 10)
    assert claimed.task_id == 1
    with second.transaction() as tx:
        assert [t.task_id for t in tx.notices.claim(B, NOW + 2, NOW + 2 + LEASE, 10)] == [2]
    with first.transaction() as tx:  # its own again, not B's
        assert tx.notices.claim(A, NOW + 3, NOW + 3 + LEASE, 10) == [claimed]
    with first.transaction() as tx:  # A polls task 1 again later, which ends its claim
        tx.notices.poll_later(claimed, NOW + 5, None, owner=A)
        tx.notices.release(A)
    with second.transaction() as tx:
        other, task = tx.notices.claim(B, NOW + 5, NOW + 5 + LEASE, 10)
        assert (other.task_id, task.task_id, task.polls) == (2, 1, 1)
    # A stalled: whatever it says about task 1 now is not recorded, and it is told so.
    with first.transaction() as tx:
        tx.notices.poll_later(task, NOW + 99, '{"stale": true}', owner=A)
        assert not tx.notices.settle(task, "delivered", ["u1"], [], None, NOW + 6, owner=A)
    with second.reading() as tx:
        assert tx.notices.results("m1") == [] and tx.notices.waiting() == {"ops": 2}
    with second.transaction() as tx:
        assert tx.notices.settle(task, "delivered", ["u1"], [], None, NOW + 6, owner=B)
        tx.notices.release(B, [other])
    with second.reading() as tx:
        assert [r.outcome for r in tx.notices.results("m1")] == ["delivered"]
        assert tx.notices.waiting() == {"ops": 1}
    with first.transaction() as tx:  # B let go of task 2: A may take it
        assert [t.task_id for t in tx.notices.claim(A, NOW + 6, NOW + 99, 10)] == [2]


def test_concurrent_claimers_take_disjoint_rows(reopen: Callable[[], Store]) -> None:
    """Four claimers at once, each its own connection and thread: every row is taken once."""
    stores = [reopen() for _ in range(4)]
    enqueue(stores[0], *[f"m{i:03d}" for i in range(200)])
    taken: dict[str, list[str]] = {f"owner-{i}": [] for i in range(len(stores))}
    errors: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def work(store: Store, owner: str) -> None:
        try:
            start.wait()
            while True:
                got = claim(store, owner, limit=7)
                if not got:
                    return
                taken[owner] += got
                with store.transaction() as tx:
                    tx.outbox.delivered(got)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(s, o)) for s, o in zip(stores, taken, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    everything = [i for got in taken.values() for i in got]
    assert sorted(everything) == [f"m{i:03d}" for i in range(200)]  # each once, none lost
    with stores[0].reading() as tx:
        assert tx.outbox.pending_count() == 0
