"""The work-notice poller in-process: a real store, the clock and DingTalk's answers passed in.

Each case puts a message in the state the sender leaves it in (asyncsend took it: 'sent', with a
task id) and checks what one answer of getsendresult makes of it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from bridge.clock import FakeClock
from bridge.config.model import SendPolicy, WorkNoticeTarget
from bridge.delivery import noticepoll
from bridge.delivery.noticepoll import NoticePoller
from bridge.dingtalk.client import DingTalkClient
from bridge.errors import DeliveryError, Reason
from bridge.model import Delivery, Message
from bridge.store import records
from bridge.store.api import Store
from bridge.store.sqlite import SqliteStore

T0 = 1_764_547_200.0
TARGET = WorkNoticeTarget(
    name="oncall",
    app_key="k",
    app_secret="s",
    agent_id=7,
    userids=("alice", "bob"),
    policy=SendPolicy(give_up_after=3600.0),
)


class Answers(DingTalkClient):
    """getsendresult answers (or errors) in order; records the task ids asked for."""

    def __init__(self, *answers: dict[str, Any] | DeliveryError) -> None:
        super().__init__(requests.Session())
        self.answers = list(answers)
        self.asked: list[int] = []

    def get_send_result(self, target: WorkNoticeTarget, task_id: int) -> dict[str, Any]:
        self.asked.append(task_id)
        answer = self.answers.pop(0)
        if isinstance(answer, DeliveryError):
            raise answer
        return answer


def result(**lists: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", "send_result": lists}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = SqliteStore(tmp_path / "state")
    yield db
    db.close()


def sent(store: Store, ids: list[str], task_id: int, at: float = T0) -> None:
    """Rows as the sender leaves a work notice DingTalk took."""
    with store.transaction() as tx:
        tx.outbox.enqueue(
            [
                Delivery(
                    id=i,
                    rule="disk",
                    target="oncall",
                    message=Message("markdown", "disk full", "disk full"),
                    fingerprint="fp",
                    created_at=datetime.fromtimestamp(at, UTC),
                )
                for i in ids
            ],
            at,
        )
        rows = [r for r in tx.outbox.listing(target="oncall") if r.id in ids]
        tx.notices.awaiting(rows, "oncall", task_id, at, noticepoll.first_poll_at(at))


def poller(store: Store, client: Answers, clock: FakeClock) -> NoticePoller:
    return NoticePoller(store, client, lambda: {"oncall": TARGET}, clock, pause=lambda s: None)


def outbox_row(store: Store, id_: str) -> records.Row | None:
    with store.reading() as tx:
        found = tx.outbox.find(id_)
    return found[0] if found else None


def results(store: Store, id_: str) -> list[records.Result]:
    with store.reading() as tx:
        return tx.notices.results(id_)


def test_nothing_is_polled_before_its_time(store: Store) -> None:
    clock = FakeClock(T0)
    sent(store, ["m1"], 11)
    client = Answers()
    assert poller(store, client, clock).step() == 0
    row = outbox_row(store, "m1")
    assert row is not None and row.status == "sent"  # not reported delivered yet
    with store.reading() as tx:
        assert tx.outbox.due("oncall", clock.time() + 100, 10) == []  # the sender leaves it


def test_everyone_received_it_delivered(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(T0)
    sent(store, ["m1"], 11)
    clock.advance(1)
    client = Answers(result(read_user_id_list=["alice"], unread_user_id_list=["bob"]))
    p = poller(store, client, clock)
    with caplog.at_level(logging.INFO, "bridge.delivery"):
        assert p.step() == 1
    assert client.asked == [11]
    assert outbox_row(store, "m1") is None
    [r] = results(store, "m1")
    assert (r.outcome, r.received, r.refused) == ("delivered", ("alice", "bob"), ())
    assert p.stats.outcomes[("oncall", "delivered")] == 1
    assert p.stats.received["oncall"] == 2
    assert "delivered rule=disk target=oncall id=m1 task_id=11 received=2" in caplog.text


def test_partial_is_recorded_per_user_and_logged(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(T0)
    sent(store, ["m1"], 11)
    clock.advance(1)
    answer = result(
        unread_user_id_list=["alice"],
        forbidden_user_id_list=["bob"],
        forbidden_list=[{"code": "143105", "count": 1, "userid": "bob"}],
    )
    p = poller(store, Answers(answer), clock)
    with caplog.at_level(logging.INFO, "bridge.delivery"):
        p.step()
    assert outbox_row(store, "m1") is None  # delivered, to one of two
    [r] = results(store, "m1")
    assert (r.outcome, r.received, r.refused) == ("partial", ("alice",), (("bob", "143105"),))
    assert p.stats.refused[("oncall", "143105")] == 1
    line = next(rec.getMessage() for rec in caplog.records if "partly" in rec.getMessage())
    assert line == (
        "partly delivered rule=disk target=oncall id=m1 task_id=11 received=1 refused=1"
        " errcodes=143105:1"
    )


@pytest.mark.parametrize(
    ("answer", "reason", "errcode"),
    [
        (
            result(
                forbidden_user_id_list=["alice", "bob"],
                forbidden_list=[
                    {"code": "143105", "count": 1, "userid": "alice"},
                    {"code": "143105", "count": 1, "userid": "bob"},
                ],
            ),
            "rate_limited",
            143105,
        ),
        (result(invalid_user_id_list=["alice", "bob"]), "dingtalk_config", None),
    ],
    ids=["daily-limit", "unknown-users"],
)
def test_nobody_received_it_dead_letter_that_outbox_retry_revives(
    store: Store, answer: dict[str, Any], reason: str, errcode: int | None
) -> None:
    clock = FakeClock(T0)
    sent(store, ["m1"], 11)
    clock.advance(1)
    poller(store, Answers(answer), clock).step()
    row = outbox_row(store, "m1")
    assert row is not None
    assert (row.status, row.reason, row.errcode) == ("dead", reason, errcode)
    assert row.errmsg is not None and "alice" in row.errmsg and "bob" in row.errmsg
    with store.transaction() as tx:
        assert tx.outbox.revive(["m1"], clock.time()) == 1
    with store.reading() as tx:
        assert [r.id for r in tx.outbox.due("oncall", clock.time(), 10)] == ["m1"]


VERDICTS = [
    # getsendresult's answer; the history entry's outcome, reason, errmsg
    (
        result(read_user_id_list=["alice", "bob"]),
        records.DELIVERED, None, "received by alice, bob",
    ),
    (
        result(
            unread_user_id_list=["alice"],
            forbidden_user_id_list=["bob"],
            forbidden_list=[{"code": "143105", "count": 1, "userid": "bob"}],
        ),
        records.DELIVERED, None, "received by alice; refused: bob 143105",
    ),
    (
        result(invalid_user_id_list=["alice", "bob"]),
        records.DEAD_LETTER, "dingtalk_config",
        "received by nobody; refused: alice invalid_user, bob invalid_user",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("answer", "outcome", "reason", "errmsg"), VERDICTS)
def test_the_verdict_joins_the_history_beside_the_accepted_send(
    store: Store, answer: dict[str, Any], outcome: str, reason: str | None, errmsg: str
) -> None:
    """The console's Messages page and `outbox history` read the whole story: DingTalk took it
    (the sender's entry), then who received it (the poller's, same id, title and attempt)."""
    clock = FakeClock(T0)
    sent(store, ["m1"], 11)
    accepted = records.Sent(
        "m1", "oncall", "disk", records.ACCEPTED, T0, 1, 1, 0, "ok", None, "disk full", ("{}",)
    )
    with store.transaction() as tx:
        tx.history.record(accepted)
    clock.advance(1)
    poller(store, Answers(answer), clock).step()
    with store.reading() as tx:
        first, told = tx.history.attempts("m1")
    assert first == accepted
    assert (told.id, told.title, told.attempt, told.at) == ("m1", "disk full", 1, T0 + 1)
    assert (told.outcome, told.reason, told.errmsg, told.bodies) == (outcome, reason, errmsg, ())


def test_an_unverified_notice_says_so_in_the_history(store: Store) -> None:
    clock = FakeClock(T0)
    sent(store, ["m1"], 11)
    p = poller(store, Answers(*[result(unread_user_id_list=["alice"])] * 100), clock)
    while outbox_row(store, "m1") is not None:
        with store.reading() as tx:
            clock.set(tx.notices.next_poll_at() or clock.time())
        p.step()
    with store.reading() as tx:
        [told] = tx.history.attempts("m1")  # (no accepted entry here: the rows were made so)
    assert told.outcome == records.DELIVERED and told.errmsg is not None
    assert told.errmsg.startswith("received by alice; unverified: ")


def test_a_retry_absorbed_by_dedup_counts_as_received(store: Store) -> None:
    clock = FakeClock(T0)
    sent(store, ["m1"], 12)
    clock.advance(1)
    dup = [{"code": "143106", "count": 1, "userid": u} for u in ("alice", "bob")]
    answer = result(forbidden_user_id_list=["alice", "bob"], forbidden_list=dup)
    poller(store, Answers(answer), clock).step()
    assert outbox_row(store, "m1") is None
    [r] = results(store, "m1")
    assert r.outcome == "delivered" and r.received == ("alice", "bob")
    assert r.note is not None and "143106" in r.note


def test_polls_until_final_then_gives_up_unverified(store: Store) -> None:
    clock = FakeClock(T0)
    sent(store, ["m1"], 11)
    partial = result(unread_user_id_list=["alice"])  # bob not processed yet
    client = Answers(*[partial] * 100)
    p = poller(store, client, clock)
    polls_at = []
    while outbox_row(store, "m1") is not None:
        with store.reading() as tx:
            clock.set(tx.notices.next_poll_at() or clock.time())
        polls_at.append(round(clock.time() - T0))
        assert p.step() == 1
    # a growing interval, bounded in time
    assert polls_at[:6] == [1, 3, 7, 15, 30, 60]
    assert polls_at[-1] <= noticepoll.POLL_FOR
    assert len(polls_at) < 30
    [r] = results(store, "m1")
    assert (r.outcome, r.received) == ("unverified", ("alice",))
    assert p.stats.outcomes[("oncall", "unverified")] == 1


def test_getsendresult_errors(store: Store) -> None:
    clock = FakeClock(T0)
    sent(store, ["m1"], 11)
    sent(store, ["m2"], 12)
    clock.advance(1)
    busy = DeliveryError(Reason.DINGTALK_BUSY, "busy", retryable=True, errcode=-1)
    unknown = DeliveryError(Reason.DINGTALK_CONFIG, "no task", retryable=False, errcode=40035)
    p = poller(store, Answers(busy, unknown), clock)
    assert p.step() == 2
    first = outbox_row(store, "m1")
    assert first is not None and first.status == "sent"  # asked again later
    assert outbox_row(store, "m2") is None  # DingTalk will never say: unverified
    [r] = results(store, "m2")
    assert r.outcome == "unverified" and r.note is not None and "no task" in r.note
    assert p.stats.failures == {("oncall", "dingtalk_busy"): 1, ("oncall", "dingtalk_config"): 1}


def test_flow_control_sends_it_again(store: Store) -> None:
    clock = FakeClock(T0)
    sent(store, ["m1"], 11)
    clock.advance(1)
    answer = result(
        unread_user_id_list=["alice"],
        forbidden_list=[{"code": "143103", "count": 1, "userid": "bob"}],
    )
    poller(store, Answers(answer), clock).step()
    row = outbox_row(store, "m1")
    assert row is not None
    assert (row.status, row.errcode) == ("pending", 143103)
    assert row.not_before == clock.time() + noticepoll.FLOW_CONTROL_WAIT


def test_a_digest_settles_every_message_it_carried(store: Store) -> None:
    clock = FakeClock(T0)
    sent(store, ["m1", "m2", "m3"], 11)
    clock.advance(1)
    p = poller(store, Answers(result(unread_user_id_list=["alice", "bob"])), clock)
    p.step()
    assert all(outbox_row(store, i) is None for i in ("m1", "m2", "m3"))
    assert all(results(store, i)[0].outcome == "delivered" for i in ("m1", "m2", "m3"))
    assert p.stats.outcomes[("oncall", "delivered")] == 3


def test_a_removed_target_is_settled_unverified(store: Store) -> None:
    clock = FakeClock(T0)
    sent(store, ["m1"], 11)
    clock.advance(1)
    p = NoticePoller(store, Answers(), dict, clock, pause=lambda s: None)
    p.step()
    [r] = results(store, "m1")
    assert r.outcome == "unverified" and r.note == "the target is no longer configured"
