"""Wake-ups across replicas on PostgreSQL (store/pglisten.py): a committed enqueue (or a revived
dead letter) reaches every listening store as its target's name, a rolled-back one does not, and
a listener that lost its database comes back by itself and says it may have missed some (None).
On the session's throwaway cluster; skipped without PostgreSQL. SQLite hears nothing of its own
enqueues: its writers wake their senders in-process."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.store.postgres import PostgresStore
from bridge.store.sqlite import SqliteStore
from tests.harness import wait_until
from tests.pgcluster import Cluster
from tests.store.values import NOW, delivery, enqueue

WITHIN = 10.0  # seconds: generous for a loaded machine; a notification takes milliseconds


@pytest.fixture
def listening(pg_url: str) -> Iterator[tuple[PostgresStore, queue.Queue[str | None]]]:
    heard: queue.Queue[str | None] = queue.Queue()
    store = PostgresStore(pg_url)
    store.listen(heard.put)
    assert heard.get(timeout=WITHIN) is None  # connected: "look once", for what came before
    yield store, heard
    store.close()


def test_a_committed_enqueue_wakes_every_listener_with_its_targets(
    listening: tuple[PostgresStore, queue.Queue[str | None]], pg_url: str
) -> None:
    store, heard = listening
    other = PostgresStore(pg_url)  # another replica
    try:
        with pytest.raises(RuntimeError), other.transaction() as tx:
            tx.outbox.enqueue([delivery("rolled-back", "nobody")], NOW)
            raise RuntimeError("the request failed after the insert")
        enqueue(other, "a", "b", target="ops")
        enqueue(other, "c", target="dev")
        assert {heard.get(timeout=WITHIN), heard.get(timeout=WITHIN)} == {"ops", "dev"}
        with other.transaction() as tx:
            tx.outbox.dead_letter(["c"], "bad", None, None, NOW)
        with other.transaction() as tx:  # `outbox retry` from another process
            assert tx.outbox.revive(["c"], NOW + 1) == 1
        assert heard.get(timeout=WITHIN) == "dev"
        assert heard.empty()  # nothing for the rolled-back target, one wake per transaction
        assert store.probe(NOW).wakeups == "listening"
    finally:
        other.close()


def test_a_listener_comes_back_after_the_database_restarts(
    listening: tuple[PostgresStore, queue.Queue[str | None]],
    pg_cluster: Cluster,
    pg_url: str,
) -> None:
    store, heard = listening
    pg_cluster.stop()
    try:
        wait_until(lambda: store.probe(NOW).wakeups == "polling", timeout=WITHIN)
    finally:
        pg_cluster.start()
    assert heard.get(timeout=30) is None  # back: it may have missed some
    enqueue(store, "after", target="ops")
    assert heard.get(timeout=WITHIN) == "ops"
    assert store.probe(NOW).wakeups == "listening"


def test_sqlite_hears_nothing_of_its_own_enqueues(tmp_path: Path) -> None:
    """Its writers wake their senders in-process; its FIFO carries only what a process that
    sends nothing tells it (test_store_fifo.py)."""
    heard: list[str | None] = []
    store = SqliteStore(tmp_path)
    try:
        store.listen(heard.append)
        enqueue(store, "a")
        time.sleep(0.5)  # a listener that heard the enqueue would have said so by now
        assert heard == [] and store.probe(NOW).wakeups == "fifo"
    finally:
        store.close()
