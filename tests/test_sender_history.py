"""The sender's history of sends (store/history.py): each attempt's outcome is recorded with the
exact bodies the channel posted and DingTalk's answer. The real channels post through a fake
`requests` session (tests/fakehttp.py) that answers from a script and keeps each body as sent,
so "exact" is checked against the bytes on the wire; the loop is driven one step at a time with
tests/test_sender.py's fake clock, rows and driver, on a real SQLite store."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from bridge.app.actionkey import ActionKey
from bridge.app.rendering import QueuedRenderer
from bridge.clock import FakeClock
from bridge.config.model import Config
from bridge.delivery.recording import HISTORY_KEEP, HISTORY_PRUNE_EVERY
from bridge.delivery.sender import TargetSender
from bridge.dingtalk.channels import channel_for
from bridge.dingtalk.client import DingTalkClient
from bridge.model import Delivery, Message, Rendered
from bridge.store import records
from bridge.store.api import Store
from bridge.store.records import Row, Sent
from bridge.store.sqlite import SqliteStore
from tests.fakehttp import FakeHttp, Response
from tests.harness import compile_yaml
from tests.test_sender import START, BreakableStore, drive, enqueue, event

SECRET = "SEC-history-secret-0123456789"
TOKEN = "TOKEN-history-robot"
APP_SECRET = "app-s3cret-history"
ACT_SECRET = "act-signing-key-of-the-history-test"

CONFIG = f"""
timezone: UTC
targets:
  ops:    {{type: robot, webhook: "https://oapi.dingtalk.com/robot/send?access_token={TOKEN}",
           secret: {SECRET}, keywords: [alert], retry: {{initial: 1s, max: 4s}}}}
  people: {{type: work_notice, app_key: dingapp, app_secret: {APP_SECRET}, agent_id: 7,
           userids: [u1]}}
inputs:
  am: {{type: alertmanager, path: /am}}
actions:
  base_url: https://bridge.example.com
  secret: {ACT_SECRET}
rules:
  - name: acts
    targets: [ops]
    actions: [ack]
  - name: r
    targets: [ops, people]
    msgtype: markdown
    title: "{{{{ labels.alertname }}}} alert"
    template: |
      {{{{ labels.alertname }}}} alert
      {{% for a in alerts %}}{{{{ a.labels.host }}}}
      {{% endfor %}}{{{{ annotations.description | default('') }}}}
"""


@dataclass
class FakeSession(FakeHttp):
    """DingTalk behind `requests`: answers each post from `script` in order (errcode 0 when it
    runs out, with a task id for a work notice); keeps every body posted, as sent."""

    script: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)

    def answer(
        self, method: str, url: str, data: bytes | None, params: dict[str, str],
        headers: dict[str, str],
    ) -> Response:  # fmt: skip
        if url.endswith("/gettoken"):
            token = {"errcode": 0, "access_token": "app-token-1", "expires_in": 7200}
            return Response(200, json.dumps(token).encode())
        assert data is not None
        self.bodies.append(data.decode())
        default: dict[str, Any] = {"errcode": 0}
        if "asyncsend_v2" in url:
            default["task_id"] = 4242
        answer = self.script.pop(0) if self.script else default
        return Response(200, json.dumps(answer, ensure_ascii=False).encode())


BUSY = {"errcode": -1, "errmsg": "系统繁忙"}
KEYWORDS = {"errcode": 310000, "errmsg": "keywords not in content"}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return cast(Config, compile_yaml(tmp_path, CONFIG))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    db = SqliteStore(tmp_path / "state")
    yield db
    db.close()


@pytest.fixture
def session() -> FakeSession:
    return FakeSession()


def sender(
    config: Config, target: str, store: Store, session: FakeSession, clock: FakeClock
) -> TargetSender:
    rules = {r.name: r for r in config.rules}
    client = DingTalkClient(session, clock)  # type: ignore[arg-type]
    channel = channel_for(config.targets[target], client)
    renderer = QueuedRenderer(lambda: rules, actions=lambda: config.actions, key=ActionKey(store))
    return TargetSender(channel, store, renderer, clock=clock)


def history(store: Store) -> list[Sent]:
    with store.reading() as tx:
        return list(reversed(tx.history.recent()))  # oldest first


def only_id(store: Store, target: str) -> str:
    with store.reading() as tx:
        (row,) = tx.outbox.listing(target=target, limit=10)
    return row.id


def test_a_delivery_records_the_exact_body_posted_and_no_secret(
    config: Config, store: Store, session: FakeSession, clock: FakeClock
) -> None:
    enqueue(store, "ops", ["DiskFull"], START)
    id_ = only_id(store, "ops")
    drive([sender(config, "ops", store, session, clock)], clock, 5)
    (sent,) = history(store)
    assert sent == Sent(
        id_, "ops", "r", "delivered", sent.at, 1, 1, None, None, None, "DiskFull alert",
        tuple(session.bodies),
    )  # fmt: skip
    assert json.loads(sent.bodies[0])["markdown"]["text"].startswith("DiskFull alert")
    for secret in (SECRET, TOKEN, "access_token", "sign="):
        assert secret not in sent.bodies[0]


def test_a_retry_then_a_delivery_are_two_attempts_with_dingtalks_answer(
    config: Config, store: Store, session: FakeSession, clock: FakeClock
) -> None:
    session.script = [BUSY]
    enqueue(store, "ops", ["CpuHot"], START)
    id_ = only_id(store, "ops")
    drive([sender(config, "ops", store, session, clock)], clock, 30)
    retrying, delivered = history(store)
    assert (retrying.outcome, retrying.attempt, retrying.errcode, retrying.errmsg) == (
        "retrying", 1, -1, "系统繁忙",
    )  # fmt: skip
    assert retrying.reason == "dingtalk_busy" and retrying.bodies == (session.bodies[0],)
    assert (delivered.outcome, delivered.attempt, delivered.reason) == ("delivered", 2, None)
    assert delivered.bodies == (session.bodies[1],) == retrying.bodies  # the same content
    with store.reading() as tx:
        assert tx.history.attempts(id_) == [retrying, delivered]


def test_a_refusal_is_a_dead_letter_with_dingtalks_errcode_and_errmsg(
    config: Config, store: Store, session: FakeSession, clock: FakeClock
) -> None:
    session.script = [KEYWORDS]
    enqueue(store, "ops", ["NoKeyword"], START)
    id_ = only_id(store, "ops")
    drive([sender(config, "ops", store, session, clock)], clock, 5)
    (dead,) = history(store)
    assert (dead.id, dead.outcome, dead.errcode, dead.errmsg, dead.reason) == (
        id_, "dead", 310000, "keywords not in content", "dingtalk_config",
    )  # fmt: skip
    assert dead.bodies == tuple(session.bodies) and dead.parts == 1


def test_a_work_notice_dingtalk_took_is_accepted_with_its_body_and_no_app_secret(
    config: Config, store: Store, session: FakeSession, clock: FakeClock
) -> None:
    enqueue(store, "people", ["Paged"], START)
    drive([sender(config, "people", store, session, clock)], clock, 5)
    (accepted,) = history(store)
    assert accepted.outcome == "accepted" and accepted.bodies == tuple(session.bodies)
    body = json.loads(accepted.bodies[0])
    assert body["agent_id"] == 7 and body["userid_list"] == "u1"
    for secret in (APP_SECRET, "app-token-1"):
        assert secret not in accepted.bodies[0]


def test_a_long_message_records_every_part_it_posted(
    config: Config, store: Store, session: FakeSession, clock: FakeClock
) -> None:
    enqueue(store, "ops", ["Long"], START, description="\n".join("x" * 70 for _ in range(800)))
    drive([sender(config, "ops", store, session, clock)], clock, 120)
    (sent,) = history(store)
    assert len(session.bodies) > 1
    assert sent.parts == len(session.bodies) and sent.bodies == tuple(session.bodies)


def test_a_digest_is_one_attempt_covering_each_message(
    config: Config, store: Store, session: FakeSession, clock: FakeClock
) -> None:
    names = [f"Storm{i:02d}" for i in range(30)]  # more than the robot's minute carries
    enqueue(store, "ops", names, START)
    with store.reading() as tx:
        ids = [r.id for r in tx.outbox.listing(target="ops", limit=100)]
    drive([sender(config, "ops", store, session, clock)], clock, 5)
    digest = history(store)[0]
    assert digest.covers == tuple(ids[: len(digest.covers)]) and len(digest.covers) > 1
    assert digest.id == f"{ids[0]}+{len(digest.covers) - 1}" and digest.rule == "r"
    assert digest.bodies == (session.bodies[0],)
    with store.reading() as tx:
        assert tx.history.attempts(ids[1]) == [digest]


class BrokenRenderer(QueuedRenderer):
    def message(self, row: Row, now: datetime) -> Rendered:
        raise KeyError("no such field")


def test_a_message_that_fails_before_any_body_is_built_is_dead_with_no_bodies(
    config: Config, store: Store, session: FakeSession, clock: FakeClock
) -> None:
    enqueue(store, "ops", ["Broken"], START)
    id_ = only_id(store, "ops")
    broken = sender(config, "ops", store, session, clock)
    broken.renderer = BrokenRenderer(dict)
    drive([broken], clock, 5)
    (dead,) = history(store)
    assert (dead.id, dead.outcome, dead.reason, dead.bodies, dead.parts) == (
        id_, "dead", "internal", (), 0,
    )  # fmt: skip
    assert dead.errmsg == "KeyError: 'no such field'" and session.bodies == []


def test_the_sender_prunes_attempts_older_than_the_keep(
    config: Config, store: Store, session: FakeSession, clock: FakeClock
) -> None:
    old = Sent("old", "ops", "r", "delivered", START - HISTORY_KEEP - 1, 1, 0, None, None,
               None, "", ())  # fmt: skip
    with store.transaction() as tx:
        tx.history.record(old)
        tx.history.record(replace(old, id="recent", at=START - HISTORY_KEEP + HISTORY_PRUNE_EVERY))
    enqueue(store, "ops", ["A"], START)
    one = sender(config, "ops", store, session, clock)
    drive([one], clock, 5)
    assert [s.id for s in history(store)][:1] == ["recent"]  # "old" went at the first outcome
    clock.advance(2 * HISTORY_PRUNE_EVERY)
    enqueue(store, "ops", ["B"], clock.time())
    drive([one], clock, 5)
    assert len(history(store)) == 2 and "recent" not in [s.id for s in history(store)]
    assert all(s.outcome == records.DELIVERED for s in history(store))


def test_an_outcome_the_store_could_not_take_is_recorded_once_with_its_history(
    config: Config, tmp_path: Path, session: FakeSession, clock: FakeClock
) -> None:
    store = BreakableStore(tmp_path / "breakable")
    enqueue(store, "ops", ["Held"], START)
    one = sender(config, "ops", store, session, clock)
    store.broken = True
    drive([one], clock, 2)
    assert one.recorder.held is not None and one.recorder.held.history[0].outcome == "delivered"
    store.broken = False
    drive([one], clock, 10)
    (sent,) = history(store)  # with its outcome, in one transaction: once
    assert sent.outcome == "delivered" and sent.bodies == tuple(session.bodies)
    store.close()


def test_a_one_tap_links_signature_is_masked_in_the_history(
    config: Config, store: Store, session: FakeSession, clock: FakeClock
) -> None:
    ackable = Delivery(
        id="ackable-1", rule="acts", target="ops", message=Message("markdown", "Ackable", ""),
        fingerprint="fp-Ackable", created_at=datetime.fromtimestamp(START, UTC),
        event=event("Ackable"),
    )  # fmt: skip
    with store.transaction() as tx:
        tx.outbox.enqueue([ackable], START)
    drive([sender(config, "ops", store, session, clock)], clock, 5)
    (sent,) = history(store)
    (posted,) = session.bodies
    link = re.search(r"https://bridge.example.com/-/act/([\w-]+)\.([\w-]+)", posted)
    assert link is not None, posted  # the chat got a working link
    assert sent.bodies == (posted.replace(f"{link[1]}.{link[2]}", f"{link[1]}.***"),)
    assert link[2] not in sent.bodies[0]
