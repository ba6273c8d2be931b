"""A message sent at once (`send-test`, the console's "send a test"), in-process: every part is
a turn of the robot's rate window, shared through the store with the senders and the other
replicas, and a window without room sends nothing. DingTalk is test_channels' scripted fake
session; the store is a real SQLite one; the clock is a FakeClock."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bridge.clock import FakeClock
from bridge.config.model import RateLimit, RobotTarget
from bridge.delivery.oneoff import NoTurn, send_once
from bridge.delivery.robots import RobotWindow, RobotWindows
from bridge.delivery.turns import StoredWindows
from bridge.dingtalk.channels import channel_for
from bridge.errors import DeliveryError, Reason
from bridge.store.sqlite import SqliteStore
from tests.test_channels import LONG, MESSAGE, NOTICE, ROBOT, UTC8, T, client_with, errcode

TWO_A_MINUTE = replace(ROBOT, policy=replace(ROBOT.policy, rate=RateLimit(2, 60.0)))


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "state")


def windows_of(store: SqliteStore, clock: FakeClock) -> RobotWindows:
    return RobotWindows(StoredWindows(store, clock))


def window_of(store: SqliteStore, clock: FakeClock, target: RobotTarget) -> RobotWindow:
    """The robot's window as another process sharing the store (the daemon) reads it."""
    return windows_of(store, clock).for_channel(channel_for(target, None))


def test_every_part_is_sent_and_a_refusal_raises(store: SqliteStore) -> None:
    clock = FakeClock(T)
    windows = windows_of(store, clock)
    client, session = client_with()
    assert send_once(windows, store, client, ROBOT, LONG, "id1", clock, UTC8) is None
    parts = channel_for(ROBOT, None).bodies(LONG, ["id1"], T, UTC8)
    assert len(parts) >= 3 and len(session.posts()) == len(parts)
    client, _ = client_with((200, {"errcode": 0, "task_id": 9}))
    assert send_once(windows, store, client, NOTICE, MESSAGE, "id2", clock, UTC8) == 9
    client, _ = client_with(errcode(310000))
    with pytest.raises(DeliveryError) as raised:
        send_once(windows, store, client, ROBOT, MESSAGE, "id3", clock, UTC8)
    assert raised.value.errcode == 310000 and raised.value.reason is Reason.DINGTALK_CONFIG


def test_a_full_window_sends_nothing_and_says_when_there_is_room(store: SqliteStore) -> None:
    clock = FakeClock(T)
    windows = windows_of(store, clock)
    client, session = client_with()
    for n in range(2):
        send_once(windows, store, client, TWO_A_MINUTE, MESSAGE, f"id{n}", clock, UTC8)
    clock.advance(10)
    with pytest.raises(NoTurn) as raised:
        send_once(windows, store, client, TWO_A_MINUTE, MESSAGE, "id2", clock, UTC8)
    assert len(session.posts()) == 2  # the third call was never made
    assert not raised.value.locked and raised.value.reason is Reason.RATE_LIMITED
    # Room once the first call leaves the window (its 60 s and the safety margin).
    assert T + 60 < raised.value.ready_at <= T + 62
    assert "no room in its rate window" in str(raised.value) and "130101" in str(raised.value)
    clock.set(raised.value.ready_at)
    send_once(windows, store, client, TWO_A_MINUTE, MESSAGE, "id3", clock, UTC8)
    assert len(session.posts()) == 3


def test_the_calls_are_counted_in_the_stores_window_for_the_senders(store: SqliteStore) -> None:
    clock = FakeClock(T)
    client, _ = client_with()
    send_once(windows_of(store, clock), store, client, TWO_A_MINUTE, MESSAGE, "id1", clock, UTC8)
    clock.advance(1)
    # Another process (the daemon's senders, another replica) sees the test's call...
    assert window_of(store, clock, TWO_A_MINUTE).used(TWO_A_MINUTE.policy.rate, clock.time()) == 1
    # ...and a test counts the calls the others made: one more leaves no room for a second.
    other = window_of(store, clock, TWO_A_MINUTE)
    turn = other.acquire(TWO_A_MINUTE.policy.rate, clock.time())
    assert not isinstance(turn, float)
    with pytest.raises(NoTurn):
        send_once(windows_of(store, clock), store, client, TWO_A_MINUTE, MESSAGE, "x", clock, UTC8)


def test_a_message_with_more_parts_than_room_sends_none_of_them(store: SqliteStore) -> None:
    clock = FakeClock(T)
    windows = windows_of(store, clock)
    client, session = client_with()
    with pytest.raises(NoTurn) as raised:
        send_once(windows, store, client, TWO_A_MINUTE, LONG, "id1", clock, UTC8)
    assert session.posts() == []
    assert "parts" in str(raised.value)
    # The turns it took are given back: the window still has room for a one-part message, in
    # this process and in the store.
    assert window_of(store, clock, TWO_A_MINUTE).used(TWO_A_MINUTE.policy.rate, clock.time()) == 0
    send_once(windows, store, client, TWO_A_MINUTE, MESSAGE, "id2", clock, UTC8)
    assert len(session.posts()) == 1


def test_a_lockout_is_kept_and_no_test_extends_it(store: SqliteStore) -> None:
    clock = FakeClock(T)
    windows = windows_of(store, clock)
    client, session = client_with(errcode(130101))
    with pytest.raises(DeliveryError) as raised:
        send_once(windows, store, client, TWO_A_MINUTE, MESSAGE, "id1", clock, UTC8)
    assert raised.value.errcode == 130101
    clock.advance(5)
    with pytest.raises(NoTurn) as again:
        send_once(windows, store, client, TWO_A_MINUTE, MESSAGE, "id2", clock, UTC8)
    assert again.value.locked and "locked out" in str(again.value)
    assert len(session.posts()) == 1
    # The lockout is in the store: the daemon's senders wait it out too.
    lockout = TWO_A_MINUTE.policy.lockout
    assert window_of(store, clock, TWO_A_MINUTE).locked_until == pytest.approx(T + lockout)
