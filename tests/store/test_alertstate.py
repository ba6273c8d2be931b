"""Contract: the state of alerts posted to `prometheus` inputs (table posted_alerts).

One alert per (input, fingerprint), replaced by `put`; `claim_expired` marks firing alerts whose
end has passed as resolved and returns them, each to one claimer only (replicas sweeping at
once); the state outlives the process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

from bridge.alerting.alertstate import TrackedAlert
from bridge.store.api import Store
from tests.store.values import NOW


def tracked(
    fingerprint: str, ends_at: float, input_name: str = "prom", resolved: bool = False
) -> TrackedAlert:
    return TrackedAlert(
        input=input_name,
        fingerprint=fingerprint,
        labels={"alertname": "Up", "instance": fingerprint, "name": "雪"},
        annotations={"summary": f"{fingerprint} is down"},
        starts_at=NOW - 60,
        ends_at=ends_at,
        generator_url="http://prom:9090/graph?g0.expr=up",
        resolved=resolved,
        timeout=False,
        updated_at=NOW,
    )


def test_an_alert_is_kept_and_replaced_by_its_next_state(store: Store) -> None:
    first = tracked("a", NOW + 40)
    with store.transaction() as tx:
        assert tx.alertstate.get_for_update("prom", "a") is None
        tx.alertstate.put(first)
    with store.reading() as tx:
        assert tx.alertstate.get("prom", "a") == first
        assert tx.alertstate.get("other", "a") is None
    later = replace(first, ends_at=NOW + 100, annotations={"summary": "still"}, updated_at=NOW + 60)
    with store.transaction() as tx:
        assert tx.alertstate.get_for_update("prom", "a") == first
        tx.alertstate.put(later)
    with store.reading() as tx:
        assert tx.alertstate.listing("prom") == [later]


def test_expired_firing_alerts_are_claimed_once_as_resolved(store: Store) -> None:
    with store.transaction() as tx:
        tx.alertstate.put(tracked("late", NOW + 10))
        tx.alertstate.put(tracked("early", NOW + 5))
        tx.alertstate.put(tracked("fresh", NOW + 100))
        tx.alertstate.put(tracked("told", NOW - 50, resolved=True))
        tx.alertstate.put(tracked("other-input", NOW, input_name="prom-2"))
    with store.reading() as tx:
        assert tx.alertstate.next_expiry(["prom"]) == NOW + 5
        assert tx.alertstate.next_expiry(["prom", "prom-2"]) == NOW
        assert tx.alertstate.next_expiry([]) is None
    with store.transaction() as tx:
        claimed = tx.alertstate.claim_expired("prom", NOW + 10, 100)
    assert [a.fingerprint for a in claimed] == ["early", "late"]  # the earliest end first
    assert all(a.resolved and a.updated_at == NOW + 10 for a in claimed)
    with store.transaction() as tx:
        assert tx.alertstate.claim_expired("prom", NOW + 10, 100) == []  # claimed already
        got = tx.alertstate.get("prom", "late")
        assert got is not None and got.resolved
    with store.reading() as tx:
        assert tx.alertstate.next_expiry(["prom"]) == NOW + 100


def test_a_claim_takes_at_most_its_limit(store: Store) -> None:
    with store.transaction() as tx:
        for i in range(5):
            tx.alertstate.put(tracked(f"a{i}", NOW + i))
    with store.transaction() as tx:
        first = tx.alertstate.claim_expired("prom", NOW + 10, 2)
        second = tx.alertstate.claim_expired("prom", NOW + 10, 10)
    assert [a.fingerprint for a in first] == ["a0", "a1"]
    assert [a.fingerprint for a in second] == ["a2", "a3", "a4"]


def test_a_claim_rolled_back_leaves_the_alert_firing(store: Store) -> None:
    """The resolved messages could not be queued (a 503): the next sweep claims it again."""
    with store.transaction() as tx:
        tx.alertstate.put(tracked("a", NOW))
    try:
        with store.transaction() as tx:
            assert len(tx.alertstate.claim_expired("prom", NOW, 10)) == 1
            raise RuntimeError("queue full")
    except RuntimeError:
        pass
    with store.transaction() as tx:
        assert [a.fingerprint for a in tx.alertstate.claim_expired("prom", NOW, 10)] == ["a"]


def test_the_state_outlives_the_process(store: Store, reopen: Callable[[], Store]) -> None:
    with store.transaction() as tx:
        tx.alertstate.put(tracked("a", NOW + 40))
    other = reopen()
    with other.reading() as tx:
        assert tx.alertstate.get("prom", "a") == tracked("a", NOW + 40)


def test_prune_forgets_old_resolved_and_untouched_alerts(store: Store) -> None:
    with store.transaction() as tx:
        tx.alertstate.put(replace(tracked("old-resolved", NOW - 10, resolved=True)))
        tx.alertstate.put(replace(tracked("new-resolved", NOW, resolved=True), updated_at=NOW + 50))
        tx.alertstate.put(replace(tracked("stale", NOW + 10), updated_at=NOW - 1000))
        tx.alertstate.put(tracked("firing", NOW + 10))
    with store.transaction() as tx:
        assert tx.alertstate.prune(resolved_before=NOW + 1, untouched_before=NOW - 500) == 2
    with store.reading() as tx:
        assert [a.fingerprint for a in tx.alertstate.listing("prom")] == ["firing", "new-resolved"]


def test_replicas_sweeping_at_once_resolve_each_alert_once(
    store: Store, reopen: Callable[[], Store]
) -> None:
    with store.transaction() as tx:
        for i in range(40):
            tx.alertstate.put(tracked(f"a{i:02}", NOW + i % 7))
    stores = [store, reopen(), reopen()]
    claimed: list[list[str]] = [[] for _ in stores]
    start = threading.Barrier(len(stores))
    failures: list[BaseException] = []

    def sweep(index: int) -> None:
        try:
            start.wait(10)
            while True:
                with stores[index].transaction() as tx:
                    batch = tx.alertstate.claim_expired("prom", NOW + 10, 3)
                if not batch:
                    return
                claimed[index] += [a.fingerprint for a in batch]
        except BaseException as exc:  # reported below, not lost in the thread
            failures.append(exc)

    threads = [threading.Thread(target=sweep, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures
    every = [f for batch in claimed for f in batch]
    assert sorted(every) == [f"a{i:02}" for i in range(40)]  # each exactly once
