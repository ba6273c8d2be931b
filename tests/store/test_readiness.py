"""Contract: the store's part of the readiness answer."""

from __future__ import annotations

from bridge.store.api import Store
from tests.store.values import NOW, enqueue


def test_an_empty_store_is_writable_with_nothing_queued(store: Store) -> None:
    probe = store.probe(NOW)
    assert (probe.writable, probe.dead_letters, dict(probe.depths)) == (True, 0, {})
    assert store.writable() and not store.failing


def test_the_probe_counts_queues_and_dead_letters(store: Store) -> None:
    enqueue(store, "a", "b", at=NOW - 10)
    enqueue(store, "c", at=NOW - 5, target="dev")
    enqueue(store, "d", at=NOW - 20, target="dev")
    with store.transaction() as tx:
        tx.outbox.dead_letter(["d", "b"], "bad", None, None, NOW)
    probe = store.probe(NOW)
    assert probe.writable and probe.dead_letters == 2
    assert dict(probe.depths) == {"ops": (1, NOW - 10), "dev": (1, NOW - 5)}


def test_the_probe_writes_nothing_a_caller_sees(store: Store) -> None:
    store.probe(NOW)
    with store.reading() as tx:
        assert tx.outbox.listing() == [] and tx.replays.count() == 0
