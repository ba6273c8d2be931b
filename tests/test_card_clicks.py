"""Clicks on interactive cards over Stream mode, in-process (app/cardclicks.py): the action ids
a button may send, what a click does and answers, a click delivered again, clicks refused, any
frame data answered; and the card updates an ack, a silence or a resolution queues
(pipeline/cardupdates.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.alerting.actions import ACK, SILENCE, Grant
from bridge.app.bridge import Bridge
from bridge.app.cardclicks import grant_for
from bridge.inputs import streamframes as sf
from bridge.inputs.http import HttpApp
from bridge.store.records import Card, Row
from tests.test_card_messages import NOW, fire, running

LABELS = {"alertname": "DiskFull", "instance": "db-1"}
CARD = Card("m1", "m1", "room", "acts", "fp", LABELS, NOW)
HOUR = 3600.0


@pytest.mark.parametrize(
    ("action", "offered", "expected"),
    [
        ("ack", ("ack", "silence"), Grant(ACK, "fp", "acts", "room", LABELS)),
        ("silence_1h", ("silence",), Grant(SILENCE, "fp", "acts", "room", LABELS, HOUR)),
        ("silence_4h", ("ack", "silence"), Grant(SILENCE, "fp", "acts", "room", LABELS, 4 * HOUR)),
        ("silence_2h", ("silence",), "offers no silence_2h (it offers silence_1h, silence_4h)"),
        ("ack", ("silence", "runbook"), 'offers no action "ack"'),
        ("silence_1h", ("ack",), 'offers no action "silence_1h"'),
        ("silence", ("silence",), 'offers no action "silence"'),
        ("reboot", ("ack", "silence"), 'offers no action "reboot"'),
    ],
)
def test_a_button_s_action_id_is_a_grant_the_rule_and_config_offer(
    action: str, offered: tuple[str, ...], expected: Grant | str
) -> None:
    got = grant_for(action, CARD, offered, (HOUR, 4 * HOUR))
    if isinstance(expected, str):
        assert isinstance(got, str) and expected in got
    else:
        assert got == expected


def delivered_card(bridge: Bridge, target: str = "room", track: str = "") -> Card:
    """The card of the oldest queued row of `target`, as the sender records it once sent."""
    with bridge.store.reading() as tx:
        [row] = [r for r in tx.outbox.listing(target=target) if r.event is not None][:1]
    assert row.event is not None
    card = Card(
        track or row.id,
        row.id,
        target,
        row.rule,
        row.event.fingerprint,
        dict(row.event.labels),
        NOW,
    )
    with bridge.store.transaction() as tx:
        tx.cards.record([card], NOW)
    return card


def click(bridge: Bridge, data: Any, message_id: str = "msg-1") -> tuple[int, dict[str, Any]]:
    frame = sf.Frame("CALLBACK", sf.CARD_TOPIC, message_id, data, json.dumps(data), {})
    ack = json.loads(bridge.card_clicks.handle(frame).ack.text)
    assert ack["headers"]["messageId"] == message_id
    return ack["code"], json.loads(ack["data"])


def click_data(card: Card, action: str, user: str = "manager1234") -> dict[str, Any]:
    content = {"cardPrivateData": {"actionIds": [action], "params": {}}}
    return {"outTrackId": card.out_track_id, "userId": user, "content": json.dumps(content)}


def status_of(answer: dict[str, Any]) -> str:
    status: str = answer["response"]["cardData"]["cardParamMap"]["status"]
    return status


def queued(bridge: Bridge, target: str) -> list[Row]:
    with bridge.store.reading() as tx:
        return sorted(tx.outbox.listing(target=target), key=lambda r: r.created_at)


def updates(bridge: Bridge, target: str) -> list[tuple[tuple[str, ...], str]]:
    return [
        (r.message.card_updates, dict(r.message.card)["status"])
        for r in queued(bridge, target)
        if r.message.card_updates
    ]


def test_an_ack_click_acknowledges_and_answers_on_the_card(tmp_path: Path) -> None:
    with running(tmp_path) as (bridge, app):
        fire(app, "acts")
        card = delivered_card(bridge)
        people = delivered_card(bridge, "people", track="x.u1")
        code, answer = click(bridge, click_data(card, "ack"))
        assert code == 200
        assert status_of(answer) == "acknowledged by manager1234"
        with bridge.store.reading() as tx:
            assert tx.acks.acknowledged_by(card.fingerprint) == "manager1234"
        # Every card of the alert says it through the outbox; a target without cards gets the
        # follow-up message instead.
        assert updates(bridge, "room") == [((card.out_track_id,), "acknowledged by manager1234")]
        assert updates(bridge, "people") == [
            ((people.out_track_id,), "acknowledged by manager1234")
        ]
        plain = [r.message.text for r in queued(bridge, "plain") if r.event is None]
        assert plain == ["DiskFull on db-1: acknowledged by manager1234: no more reminders until"
                         " it resolves"]  # fmt: skip
        assert bridge.card_clicks.snapshot() == {"done": 1}


def test_a_click_delivered_again_is_acted_on_once(tmp_path: Path) -> None:
    with running(tmp_path) as (bridge, app):
        fire(app, "acts")
        card = delivered_card(bridge)
        assert click(bridge, click_data(card, "silence_1h"), "same")[0] == 200
        code, answer = click(bridge, click_data(card, "silence_1h"), "same")
        assert (code, answer) == (200, {"response": None})
        assert len(bridge.desk.silences(NOW)) == 1
        assert len(updates(bridge, "room")) == 1
        assert bridge.card_clicks.snapshot() == {"done": 1, "taken_before": 1}


def test_a_silence_click_silences_and_says_so(tmp_path: Path) -> None:
    with running(tmp_path) as (bridge, app):
        fire(app, "acts")
        card = delivered_card(bridge)
        code, answer = click(bridge, click_data(card, "silence_4h"))
        assert code == 200 and status_of(answer) == "silenced for 4h by manager1234"
        [silence] = bridge.desk.silences(NOW)
        assert silence.ends_at == NOW + 4 * HOUR and silence.author == "manager1234"
        assert "one-tap card" in silence.comment
        assert updates(bridge, "room") == [((card.out_track_id,), "silenced for 4h by manager1234")]


def test_a_click_by_someone_not_allowed_does_nothing_and_says_so(tmp_path: Path) -> None:
    with running(tmp_path) as (bridge, app):
        fire(app, "acts")
        card = delivered_card(bridge)
        code, answer = click(bridge, click_data(card, "ack", user="intern42"))
        assert code == 200 and "Sorry intern42, you may not ack" in status_of(answer)
        with bridge.store.reading() as tx:
            assert tx.acks.acknowledged_by(card.fingerprint) is None
        assert updates(bridge, "room") == []
        assert bridge.card_clicks.snapshot() == {"not_allowed": 1}


@pytest.mark.parametrize(
    ("data", "code", "outcome"),
    [
        (click_data(Card("nope", "nope", "room", "acts", "fp", {}, NOW), "ack"), 404,
         "unknown_card"),
        ("CARD", 400, "unknown_action"),
        ({"outTrackId": "m1"}, 400, "bad_click"),
        ([], 400, "bad_click"),
    ],
)  # fmt: skip
def test_an_unknown_card_or_action_gets_a_4xx_ack(
    tmp_path: Path, data: Any, code: int, outcome: str
) -> None:
    with running(tmp_path) as (bridge, app):
        fire(app, "acts")
        card = delivered_card(bridge)
        if data == "CARD":
            data = click_data(card, "reboot")
        assert click(bridge, data)[0] == code
        assert bridge.card_clicks.snapshot() == {outcome: 1}


def test_a_chat_ack_and_a_resolution_update_the_cards(tmp_path: Path) -> None:
    with running(tmp_path) as (bridge, app):
        fire(app, "acts")
        card = delivered_card(bridge)
        bridge.desk.acknowledge(card.fingerprint[:8], "zhangsan", NOW)
        assert updates(bridge, "room") == [((card.out_track_id,), "acknowledged by zhangsan")]
        fire(app, "acts", "resolved")
        assert updates(bridge, "room")[-1] == ((card.out_track_id,), "Resolved")
        with bridge.store.reading() as tx:
            assert tx.cards.live(card.fingerprint) == []  # settled: a new firing is a new card


CLICKS = st.dictionaries(
    st.sampled_from(["outTrackId", "userId", "content", "corpId"]),
    st.text(max_size=30)
    | st.sampled_from(["m1", "manager1234"])
    | st.builds(
        lambda a: json.dumps({"cardPrivateData": {"actionIds": [a]}}),
        st.sampled_from(["ack", "silence_1h", "silence_9h", ""]) | st.text(max_size=5),
    )
    | st.integers()
    | st.none(),
)


@settings(max_examples=60, deadline=None)
@given(data=CLICKS | st.none() | st.text(max_size=20) | st.lists(st.integers(), max_size=3))
def test_any_click_data_gets_an_ack(data: Any) -> None:
    """Any data: a 200 (a click acted on, refused, or delivered again) or a 4xx saying why."""
    bridge, _ = SHARED[0]
    code, _ = click(bridge, data, message_id=f"m{id(data)}")
    assert code in (200, 400, 404)


SHARED: list[tuple[Bridge, HttpApp]] = []


@pytest.fixture(autouse=True, scope="module")
def _shared(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with running(tmp_path_factory.mktemp("shared")) as (bridge, app):
        fire(app, "acts")
        delivered_card(bridge)
        SHARED.append((bridge, app))
        yield
        SHARED.clear()
