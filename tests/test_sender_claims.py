"""TargetSender's claims in-process (delivery/claims.py): two senders of one target send each row
once; a long message waiting for the robot keeps its rows past the first lease; a sender that
stalled past its lease and lost its rows drops the message and records nothing over the new
holder; a stopping sender lets go of what it holds. tests/test_sender.py's fakes: a fake clock,
a fake DingTalk, a real SQLite store, the loop driven one step at a time."""

from __future__ import annotations

import os
from collections import Counter
from contextlib import _GeneratorContextManager
from pathlib import Path

import pytest

from bridge.clock import FakeClock
from bridge.config.model import Config
from bridge.delivery.claims import (
    DEFAULT_LEASE,
    free_predecessors,
    is_predecessor,
    new_replica_id,
)
from bridge.delivery.robots import RobotWindows
from bridge.delivery.sender import TargetSender
from bridge.delivery.turns import StoredWindows
from bridge.store.api import Store
from bridge.store.sql import SqlTx
from bridge.store.sqlite import SqliteStore
from tests.test_sender import (  # the fixtures too: one set for the sender's tests
    START,
    FakeDingTalk,
    clock,
    config,
    ding,
    drive,
    enqueue,
    make,
    pending,
    store,
    windows,
)

__all__ = ["clock", "config", "ding", "store", "windows"]  # fixtures pytest finds by name

LONG_TEXT = "\n".join(f"line {i:05d} " + "x" * 60 for i in range(800))  # ~55 KB: parts


def claimable_by_another(store: Store, clock: FakeClock, target: str = "a") -> list[str]:
    """What a replica that is not the sender could claim now (claimed, then let go again)."""
    now = clock.time()
    with store.transaction() as tx:
        taken = [r.id for r in tx.outbox.claim(target, "another", now, now + 1, 100)]
        tx.outbox.release("another", taken)
    return taken


def long_message_in_flight(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock, windows: RobotWindows
) -> TargetSender:
    """19 alerts and the first part of a long one fill the robot's minute: the next parts wait."""
    enqueue(store, "a", [f"A{i}" for i in range(19)], clock.time())
    enqueue(store, "a", ["Long"], clock.time() + 1, description=LONG_TEXT)
    sender = make(config, "a", store, ding, clock, windows)
    drive([sender], clock, 5)
    [row] = pending(store)
    assert row.parts_sent == 1 and len(ding.calls) == 20
    return sender


def test_two_senders_of_one_target_send_each_row_once(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock, windows: RobotWindows
) -> None:
    """Long alerts keep a sender busy for minutes, one part per turn of the robot: meanwhile
    the other sender takes the next rows, never the one in flight."""
    enqueue(store, "a", [f"Long{i}" for i in range(3)], clock.time(), description=LONG_TEXT)
    names = [f"M{i:02d}" for i in range(10)]
    enqueue(store, "a", names, clock.time() + 1)
    pair = [make(config, "a", store, ding, clock, windows) for _ in range(2)]
    assert pair[0].owner != pair[1].owner
    drive(pair, clock, 600)
    assert not pending(store)
    sent = Counter(c.body["markdown"]["title"] for c in ding.calls)
    assert set(sent.values()) == {1}, sent  # every part of every message once
    assert {t.split()[0] for t in sent} == {*names, "Long0", "Long1", "Long2"}
    assert sum(1 for t in sent if t.startswith("Long0")) >= 3  # it did go in parts


def test_a_long_message_waiting_for_the_robot_keeps_its_claim_past_the_lease(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock, windows: RobotWindows
) -> None:
    sender = long_message_in_flight(config, store, ding, clock, windows)
    assert claimable_by_another(store, clock) == []
    drive([sender], clock, DEFAULT_LEASE * 1.5)  # the robot's minute is not over yet
    assert len(ding.calls) == 20  # still waiting, and still holding the row
    assert claimable_by_another(store, clock) == []
    drive([sender], clock, 120)
    parts = [c for c in ding.calls if "Long" in c.body["markdown"]["title"]]
    assert len(parts) >= 3 and not pending(store)
    with store.reading() as tx:
        assert tx.outbox.claimed(clock.time()) == {}


def test_a_sender_that_lost_its_claim_drops_the_message_and_records_nothing_over_it(
    config: Config,
    store: Store,
    ding: FakeDingTalk,
    clock: FakeClock,
    windows: RobotWindows,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sender = long_message_in_flight(config, store, ding, clock, windows)
    clock.advance(DEFAULT_LEASE + 1)  # the sender stalled: its lease ran out
    now = clock.time()
    with store.transaction() as tx:  # another replica takes the row
        [taken] = tx.outbox.claim("a", "another", now, now + DEFAULT_LEASE, 10)
    assert taken.decode().parts_sent == 1
    # Past the robot's minute (its next part's turn), before the other replica's lease ends:
    drive([sender], clock, 60 - (now - START) + 2)
    assert clock.time() < now + DEFAULT_LEASE
    assert len(ding.calls) == 20  # no part sent after the claim was lost
    assert "claim lost, message left to the replica that took it" in caplog.text
    [row] = pending(store)
    assert (row.parts_sent, row.attempts) == (1, 0)  # the other replica resumes it as it was
    assert claimable_by_another(store, clock) == [row.id]  # "another" holds it, none else


def test_a_stopping_sender_lets_go_of_its_rows(
    config: Config, store: Store, ding: FakeDingTalk, clock: FakeClock, windows: RobotWindows
) -> None:
    sender = long_message_in_flight(config, store, ding, clock, windows)
    with store.reading() as tx:
        assert tx.outbox.claimed(clock.time()) == {"a": 1}
    sender.start()  # its thread waits for the robot's next minute (real seconds: stopped first)
    sender.stop(5.0)
    assert not sender.alive()
    with store.reading() as tx:
        assert tx.outbox.claimed(clock.time()) == {}
    [row] = pending(store)
    assert claimable_by_another(store, clock) == [row.id]


class CountingStore(SqliteStore):
    """A SQLite store that counts the write transactions opened on it."""

    writes = 0

    def transaction(self, share_commit: bool = False) -> _GeneratorContextManager[SqlTx]:
        self.writes += 1
        return super().transaction()


def test_an_idle_sender_writes_nothing(
    config: Config, tmp_path: Path, ding: FakeDingTalk, clock: FakeClock
) -> None:
    """Nothing due, nothing claimed: an idle sender only reads (a claim every second would take
    SQLite's write lock for nothing, and wait behind any other writer, holding the store)."""
    store = CountingStore(tmp_path / "counted")
    try:
        enqueue(store, "a", ["Later"], clock.time() + 3600)  # queued, not due for an hour
        sender = make(config, "a", store, ding, clock, RobotWindows(StoredWindows(store, clock)))
        drive([sender], clock, 5)  # its first look loads the robot's window once (a write)
        before = store.writes
        drive([sender], clock, 60)
        assert store.writes == before and ding.calls == []
        drive([sender], clock, 3600)  # then it is due: claimed (a write) and sent
        assert store.writes > before and len(ding.calls) == 1
    finally:
        store.close()


ME = "node-1:4242:aaaaaa"


@pytest.mark.parametrize(
    ("owner", "predecessor"),
    [
        ("node-1:4242:bbbbbb", True),  # our pid, another start: a restarted container (pid 1)
        ("node-1:999:cccccc", True),  # a pid that runs no more: killed or crashed
        ("node-1:1000:dddddd", False),  # a pid that runs: another live process of the host
        ("node-1:1001:dddddd", False),  # a live sibling of `server.workers` (app/workers.py)
        ("node-2:999:eeeeee", False),  # another host's: only its lease ends it
        (ME, False),
        ("node-1", False),  # not an id this code makes
        ("node-1:x:ffffff", False),
    ],
)
def test_a_dead_process_of_this_host_is_a_predecessor(owner: str, predecessor: bool) -> None:
    assert is_predecessor(owner, ME, alive=lambda pid: pid in (1000, 1001)) is predecessor


def test_a_restart_takes_over_what_its_dead_predecessor_held_at_once(store: Store) -> None:
    me = new_replica_id()
    host, pid, _ = me.split(":")
    dead, elsewhere = f"{host}:{pid}:0ld0ld", f"far-away:{pid}:0ther0"
    live = f"{host}:{os.getppid()}:11ve00"  # the test runner's parent runs
    enqueue(store, "a", ["A0", "A1", "A2"], START)
    with store.transaction() as tx:
        for owner, limit in ((dead, 1), (live, 1), (elsewhere, 1)):
            tx.outbox.claim("a", owner, START, START + DEFAULT_LEASE, limit)
    assert free_predecessors(store, me, START + 1) == [dead]
    with store.reading() as tx:
        assert tx.outbox.claimers(START + 1) == {live, elsewhere}
