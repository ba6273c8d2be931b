"""Recall in-process (delivery/recall.py): which messages can be recalled and, for the others,
the reason an operator reads; the recall calls (20 keys each, group or one-to-one) and what is
recorded. DingTalk is a fake session; the store is a real SQLite one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.clock import FakeClock
from bridge.config.model import RobotTarget, Target
from bridge.delivery.recall import RECALL_WINDOW, recall_ids
from bridge.dingtalk.approbot import BATCH_RECALL, GROUP_RECALL, recall_answer
from bridge.dingtalk.client import DingTalkClient
from bridge.store.api import Store
from bridge.store.records import AppRobotSend
from bridge.store.sqlite import SqliteStore
from tests.fakehttp import Response
from tests.store.values import NOW, enqueue
from tests.test_approbot import GROUP, PEOPLE, FakeV1

ROBOT = RobotTarget("ops", "https://oapi.dingtalk.com/robot/send?access_token=t", None)
TARGETS: dict[str, Target] = {"grp": GROUP, "people": PEOPLE, "ops": ROBOT}


@dataclass
class RecallFake(FakeV1):
    """Recalls every key except those in `refuse` (with a reason)."""

    refuse: dict[str, str] = field(default_factory=dict)

    def answer(
        self, method: str, url: str, data: bytes | None, params: dict[str, str],
        headers: dict[str, str],
    ) -> Response:  # fmt: skip
        if url.endswith(("Recall", "recall")):
            body = json.loads(data or b"{}")
            self.calls.append((url, headers, body))
            keys = body["processQueryKeys"]
            answer = {
                "successResult": [k for k in keys if k not in self.refuse],
                "failedResult": {k: self.refuse[k] for k in keys if k in self.refuse},
            }
            return Response(200, json.dumps(answer).encode())
        return super().answer(method, url, data, params, headers)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = SqliteStore(tmp_path / "state")
    yield opened
    opened.close()


def _sent(store: Store, *sends: AppRobotSend) -> None:
    with store.transaction() as tx:
        tx.appsends.record(sends, NOW)


def _group(id_: str, key: str, at: float = NOW) -> AppRobotSend:
    return AppRobotSend(
        id_, key, "grp", "r", GROUP.robot_code, GROUP.open_conversation_id, (), (), at
    )


def _oto(id_: str, key: str, at: float = NOW) -> AppRobotSend:
    return AppRobotSend(id_, key, "people", "r", PEOPLE.robot_code, None, ("u1",), (), at)


def _recall(store: Store, fake: FakeV1, ids: list[str], now: float = NOW + 60) -> dict[str, str]:
    client = DingTalkClient(cast(requests.Session, fake), FakeClock(now))
    results = recall_ids(store, client, TARGETS, ids, now)
    return {r.id: r.why or "recalled" for r in results}


def test_group_and_one_to_one_messages_are_recalled_by_their_keys(store: Store) -> None:
    _sent(store, _group("g1", "kg1"), _group("g2", "kg2"), _oto("o1", "ko1"))
    fake = RecallFake()
    assert _recall(store, fake, ["g1", "g2", "o1"]) == {
        "g1": "recalled",
        "g2": "recalled",
        "o1": "recalled",
    }
    recalls = [(url, body) for url, _, body in fake.calls if "ecall" in url]
    assert recalls == [
        (
            GROUP.api_base + GROUP_RECALL,
            {
                "robotCode": GROUP.robot_code,
                "processQueryKeys": ["kg1", "kg2"],
                "openConversationId": GROUP.open_conversation_id,
            },
        ),
        (
            PEOPLE.api_base + BATCH_RECALL,
            {"robotCode": PEOPLE.robot_code, "processQueryKeys": ["ko1"]},
        ),
    ]
    with store.reading() as tx:
        assert tx.appsends.of("g1")[0].recalled_at == NOW + 60
    assert _recall(store, RecallFake(), ["g1"]) == {"g1": "already recalled"}


def test_keys_go_twenty_a_call(store: Store) -> None:
    _sent(store, *(_oto(f"o{i}", f"k{i}") for i in range(45)))
    fake = RecallFake()
    assert set(_recall(store, fake, [f"o{i}" for i in range(45)]).values()) == {"recalled"}
    sizes = [len(body["processQueryKeys"]) for url, _, body in fake.calls if "ecall" in url]
    assert sizes == [20, 20, 5]


def test_a_key_dingtalk_did_not_recall_is_reported_and_recorded(store: Store) -> None:
    _sent(store, _group("g1", "kg1"))
    fake = RecallFake()
    fake.refuse = {"kg1": "message not found"}
    assert _recall(store, fake, ["g1"]) == {"g1": "message not found"}
    with store.reading() as tx:
        [send] = tx.appsends.of("g1")
    assert (send.recalled_at, send.recall_note) == (None, "message not found")


REASONS = [
    ("older than 24 h", "old", "sent more than 24 hours ago"),
    ("pending", "queued", "not sent yet (pending)"),
    ("a custom robot's pending row", "robot", "not sent yet (pending)"),
    ("unknown", "nope", "custom robot (webhook) messages cannot be recalled"),
    ("target gone", "gone", "no longer an app_robot in the config"),
]


@pytest.mark.parametrize("id_, why", [r[1:] for r in REASONS], ids=[r[0] for r in REASONS])
def test_why_a_message_cannot_be_recalled(store: Store, id_: str, why: str) -> None:
    _sent(store, _oto("old", "k-old", at=NOW - RECALL_WINDOW - 1))
    _sent(store, replace(_group("gone", "k-gone"), target="removed"))
    enqueue(store, "queued", target="grp")
    enqueue(store, "robot", target="ops")
    fake = RecallFake()
    result = _recall(store, fake, [id_])
    assert why in result[id_]
    assert not [c for c in fake.calls if "ecall" in c[0]]  # DingTalk was not asked


def test_a_failed_recall_call_is_said_per_message(store: Store) -> None:
    _sent(store, _group("g1", "kg1"))
    fake = FakeV1(script=[(400, b'{"code":"invalidParameter.robotCode.notExsit","message":"x"}')])
    result = _recall(store, fake, ["g1"])
    assert result["g1"].startswith("the recall call failed") and "notExsit" in result["g1"]


@settings(max_examples=200, deadline=None)
@given(
    answer=st.dictionaries(
        st.sampled_from(["successResult", "failedResult", "other"]),
        st.none()
        | st.text(max_size=5)
        | st.lists(st.text(max_size=3) | st.integers(), max_size=4)
        | st.dictionaries(st.text(max_size=3), st.text(max_size=3) | st.integers(), max_size=3),
    ),
    keys=st.lists(st.text(max_size=3), max_size=5, unique=True),
)
def test_any_recall_answer_accounts_for_every_key(answer: dict[str, Any], keys: list[str]) -> None:
    done, failed = recall_answer(answer, keys)
    assert sorted(done + list(failed)) == sorted(keys)
