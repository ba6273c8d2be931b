"""Interactive cards on the app robot, in-process: which messages go as cards and with which
variables (pipeline/cardmessage.py), the bodies and calls that deliver and update them
(dingtalk/approbot.py, dingtalk/cards.py), the config check that clicks can come back, and the
card fields of a stored message."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
import requests

from bridge.app.bridge import Bridge
from bridge.app.rendering import QueuedRenderer
from bridge.clock import FakeClock
from bridge.config.model import AppRobotTarget
from bridge.dingtalk import cards
from bridge.dingtalk.approbot import CARD_KEY, AppRobotChannel
from bridge.dingtalk.client import DingTalkClient
from bridge.dingtalk.openapi import TOKEN_PATH
from bridge.dingtalk.responses import Delivered
from bridge.errors import ConfigError
from bridge.inputs.http import HttpApp
from bridge.model import Message
from bridge.pipeline import cardmessage
from bridge.store.codec import message_from_json, message_to_json
from bridge.store.records import Row
from tests import test_action_links as action_links
from tests.fakehttp import FakeHttp, Response
from tests.harness import am_alert_payload, compile_yaml
from tests.test_action_links import call

NOW = 1_800_000_000.0
UTC8 = ZoneInfo("Asia/Shanghai")
SECRET = "0123456789abcdef0123456789abcdef"
APP = "dingcardapp"
CONFIG = f"""
locale: en
actions: {{base_url: "https://bridge.example.com/", secret: {SECRET}, silence: [1h, 4h]}}
targets:
  room:
    type: app_robot
    app_key: {APP}
    app_secret: s
    open_conversation_id: "cid=="
    card_template_id: tpl.alert
  people: {{type: app_robot, app_key: {APP}, app_secret: s, userids: [u1, u2],
            card_template_id: tpl.alert}}
  plain: {{type: app_robot, app_key: {APP}, app_secret: s, open_conversation_id: "cid2=="}}
inputs:
  am: {{type: alertmanager, path: /am}}
  chat: {{type: dingtalk_robot, listen: stream, app_key: {APP}, app_secret: s,
          allow: {{staff_ids: [manager1234]}}}}
rules:
  - {{name: acts, match: {{kind: acts}}, targets: [room, people, plain],
      actions: [ack, silence, runbook]}}
  - {{name: runbook_only, match: {{kind: runbook}}, targets: [room], actions: [runbook]}}
  - {{name: quiet, targets: [room]}}
"""


def running(tmp_path: Path) -> AbstractContextManager[tuple[Bridge, HttpApp]]:
    """The bridge in-process, on this module's config (test_action_links.running)."""
    return action_links.running(tmp_path, CONFIG)


def fire(app: HttpApp, kind: str, status: str = "firing") -> None:
    payload = am_alert_payload("DiskFull", status, kind=kind, instance="db-1")
    payload["alerts"][0]["annotations"]["runbook_url"] = "https://wiki.example/DiskFull"
    code, _, answer = call(app, "/am", "POST", json.dumps(payload).encode())
    assert code == 200, answer


def rendered(bridge: Bridge, target: str) -> list[tuple[Row, Message]]:
    renderer = QueuedRenderer(
        bridge._rules,
        lambda: bridge.config.locale,
        lambda: bridge.config.actions,
        bridge.action_key,
        bridge._sends_cards,
    )
    with bridge.store.reading() as tx:
        rows = sorted(tx.outbox.listing(target=target), key=lambda r: r.created_at)
    return [(row, renderer.message(row, bridge.clock.now()).message) for row in rows]


def test_a_firing_alert_of_a_rule_with_actions_goes_as_a_card(tmp_path: Path) -> None:
    with running(tmp_path) as (bridge, app):
        fire(app, "acts")
        [(row, message)] = rendered(bridge, "room")
        assert row.event is not None
        params = dict(message.card)
        assert set(params) == {"title", "markdown", "status", "alert", "runbook_url"}
        assert params["title"] == message.title and params["markdown"] == message.text
        assert params["status"] == "Firing"
        assert params["alert"] == row.event.fingerprint[:8]
        assert params["runbook_url"] == "https://wiki.example/DiskFull"
        # On a card the buttons are the template's: no signed link in its text.
        assert "/-/act/" not in message.text and "DiskFull" in message.text
        # A target without a card template gets the message with its links, as before.
        [(_, plain)] = rendered(bridge, "plain")
        assert plain.card == () and "/-/act/" in plain.text


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("runbook", "firing"),  # no ack nor silence: nothing to click
        ("other", "firing"),  # a rule without actions
        ("acts", "resolved"),  # resolved messages stay messages
    ],
)
def test_other_messages_stay_plain_robot_messages(tmp_path: Path, kind: str, status: str) -> None:
    with running(tmp_path) as (bridge, app):
        fire(app, kind, status)
        for _, message in rendered(bridge, "room"):
            assert message.card == ()


@pytest.mark.parametrize(
    ("locale", "status", "shown"),
    [
        ("en", "Resolved", "Resolved"),
        ("zh-CN", "Resolved", "已恢复"),
        ("zh-CN", "自定义", "自定义"),
    ],
)
def test_an_update_sets_the_status_in_the_config_s_language(
    locale: Any, status: str, shown: str
) -> None:
    update = cardmessage.card_update("r", "room", "fp", ["t1", "t2"], status, NOW)
    assert update.message.card_updates == ("t1", "t2")
    localized = cardmessage.localized(update.message, locale)
    assert localized.card == (("status", shown),) and localized.text == shown


GROUP = AppRobotTarget(
    "room", APP, "s", APP, "cid==", card_template_id="tpl", api_base="https://api.example"
)
PEOPLE = replace(GROUP, name="people", open_conversation_id=None, userids=("u1", "u2"))
CARD = Message("markdown", "T", "body", card=(("title", "T"), ("status", "Firing")))


@dataclass
class FakeV1(FakeHttp):
    calls: list[tuple[str, str, Any]] = field(default_factory=list)

    def answer(
        self, method: str, url: str, data: bytes | None, params: dict[str, str],
        headers: dict[str, str],
    ) -> Response:  # fmt: skip
        body = json.loads(data) if data else None
        self.calls.append((method, url, body))
        if url.endswith(TOKEN_PATH):
            return Response(200, b'{"accessToken": "TOK", "expireIn": 7200}')
        return Response(200, b'{"success": true, "result": {}}')


def channel(target: AppRobotTarget) -> tuple[AppRobotChannel, FakeV1]:
    fake = FakeV1()
    client = DingTalkClient(cast(requests.Session, fake), FakeClock(NOW))
    return AppRobotChannel(target, client), fake


def test_a_group_card_is_one_call_whose_track_is_the_message_id() -> None:
    room, fake = channel(GROUP)
    [body] = room.bodies(CARD, ["m1"], NOW, UTC8)
    assert body == cards.deliver_body(
        "tpl", "m1", dict(CARD.card), APP, open_conversation_id="cid=="
    )
    outcome = room.post(body)
    assert fake.calls[-1][:2] == ("POST", "https://api.example" + cards.CREATE_AND_DELIVER_PATH)
    assert isinstance(outcome, Delivered) and outcome.receipt is not None
    receipt = outcome.receipt
    assert (receipt.process_query_key, receipt.card) == (CARD_KEY + "m1", "m1")
    assert (receipt.conversation, receipt.users) == ("cid==", ())


def test_one_to_one_each_user_gets_a_card_of_their_own() -> None:
    people, _ = channel(PEOPLE)
    bodies = people.bodies(CARD, ["m1"], NOW, UTC8)
    assert [(b["outTrackId"], b["openSpaceId"]) for b in bodies] == [
        ("m1.u1", "dtv1.card//IM_ROBOT.u1"),
        ("m1.u2", "dtv1.card//IM_ROBOT.u2"),
    ]
    outcome = people.post(bodies[1])
    assert isinstance(outcome, Delivered) and outcome.receipt is not None
    assert (outcome.receipt.users, outcome.receipt.conversation) == (("u2",), None)


def test_an_update_is_a_put_per_card_and_keeps_no_receipt() -> None:
    room, fake = channel(GROUP)
    update = cardmessage.card_update("r", "room", "fp", ["m1", "m2"], "Resolved", NOW).message
    bodies = room.bodies(update, ["u9"], NOW, UTC8)
    assert bodies == [cards.update_body(t, {"status": "Resolved"}) for t in ("m1", "m2")]
    outcome = room.post(bodies[0])
    assert fake.calls[-1][:2] == ("PUT", "https://api.example" + cards.UPDATE_PATH)
    assert outcome == Delivered(None)


def test_without_a_template_a_card_message_is_a_robot_message() -> None:
    plain, _ = channel(replace(GROUP, card_template_id=""))
    [body] = plain.bodies(CARD, ["m1"], NOW, UTC8)
    assert body["msgKey"] == "sampleMarkdown"


def test_a_card_target_needs_a_stream_robot_input_of_its_app(tmp_path: Path) -> None:
    text = CONFIG.replace("listen: stream, app_key: " + APP, "listen: stream, app_key: other")
    with pytest.raises(ConfigError) as caught:
        compile_yaml(tmp_path, text)
    problems = {p.path: p for p in caught.value.problems}
    assert set(problems) == {"targets.room.card_template_id", "targets.people.card_template_id"}
    assert "no dingtalk_robot input listens" in problems["targets.room.card_template_id"].message
    assert f"app_key {APP}" in str(problems["targets.room.card_template_id"].hint)


def test_a_stored_message_keeps_its_card() -> None:
    update = cardmessage.card_update("r", "room", "fp", ["m1"], "Resolved", NOW).message
    for message in (CARD, update, Message("text", "t", "x")):
        assert message_from_json(message_to_json(message)) == message
