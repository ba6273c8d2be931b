"""Interactive cards end to end: the real daemon, the simulator as DingTalk (its v1.0 card API
and its Stream gateway). An alert to an app_robot target with a card_template_id arrives as a
card (one in the group, one per user one-to-one); an Ack button clicked over Stream acknowledges
it (no more reminders) and the card says who did; the same click frame delivered again is
handled once; a click by someone not in the allow list is refused on the card and nothing is
done; Silence 1h makes a silence and the card says so; the alert resolving turns the card to
resolved."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness import (
    Daemon,
    Simulator,
    am_alert_payload,
    metric_value,
    scrape_metrics,
    wait_until,
)
from tests.test_e2e_actions import silence_list
from tests.test_e2e_worknotice import settled, show

APP, SECRET = "dingcardapp", "card-app-secret"
GROUP = "cidCardOps=="
WAIT = 30.0


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    app = {
        "app_secret": SECRET,
        "agent_id": 1,
        "users": ["alice", "bob"],
        "groups": [GROUP],
        "disbanded_groups": ["cidGone=="],
    }
    sim = Simulator(spec={"apps": {APP: app}})
    yield sim
    sim.stop()


def daemon_config(sim: Simulator) -> dict[str, Any]:
    app = {"app_key": APP, "app_secret": SECRET, "api_base": sim.url}
    cards = {"type": "app_robot", **app, "card_template_id": "tpl.alert.schema"}
    return {
        "actions": {"base_url": "https://bridge.example.com", "silence": ["1h", "4h"]},
        "targets": {
            "room": {**cards, "open_conversation_id": GROUP, "rate_limit": {"messages": 0}},
            "people": {**cards, "userids": ["alice", "bob"], "rate_limit": {"messages": 0}},
        },
        "inputs": {
            # Reminders are posted at once here, standing for ones after repeat_interval.
            "am": {"type": "alertmanager", "path": "/am", "dedup_window": 0},
            "chat": {
                "type": "dingtalk_robot",
                "listen": "stream",
                **app,
                "allow": {"staff_ids": ["manager1234"]},
            },
        },
        "rules": [
            {
                "name": "paged",
                "inputs": ["am"],
                "targets": ["room", "people"],
                "actions": ["ack", "silence", "runbook"],
            }
        ],
    }


@pytest.fixture
def daemon(sim: Simulator, tmp_path: Path) -> Iterator[Daemon]:
    sim.control("reset")
    daemon = Daemon(daemon_config(sim), directory=tmp_path)
    wait_until(lambda: subscribed_to_cards(sim), timeout=15)
    yield daemon
    daemon.stop()


def stream(sim: Simulator) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(f"{sim.url}/_sim/stream", timeout=5).json()
    return body


def subscribed_to_cards(sim: Simulator) -> bool:
    return any(
        c["open"] and "CALLBACK /v1.0/card/instances/callback" in c["subscriptions"]
        for c in stream(sim)["connections"]
    )


def instances(sim: Simulator) -> dict[str, dict[str, Any]]:
    body = requests.get(f"{sim.url}/_sim/cards", timeout=5).json()
    return {card["outTrackId"]: card for card in body["instances"]}


def status(sim: Simulator, track: str) -> str:
    return str(instances(sim).get(track, {}).get("cardParamMap", {}).get("status", ""))


def fire(sim: Simulator, daemon: Daemon) -> str:
    """Post DiskFull; the outbox id of its card in the group (once it arrived)."""
    payload = am_alert_payload("DiskFull", instance="db-1")
    payload["alerts"][0]["annotations"]["runbook_url"] = "https://wiki.example/DiskFull"
    assert daemon.post("/am", payload).status_code == 200
    [id_] = wait_until(lambda: settled(daemon, "delivered", "room"), WAIT)
    wait_until(lambda: id_ in instances(sim), WAIT)
    return str(id_)


def click(sim: Simulator, track: str, action: str, user: str = "manager1234", **more: str) -> str:
    body = {"outTrackId": track, "userId": user, "action": action, **more}
    pushed: dict[str, Any] = sim.control("cards/click", body)
    message_id: str = pushed["message_id"]
    return message_id


def acks_of(sim: Simulator, message_id: str) -> list[dict[str, Any]]:
    return [a for a in stream(sim)["acks"] if a.get("message_id") == message_id]


def test_an_alert_arrives_as_a_card_in_the_group_and_in_each_user_s_chat(
    sim: Simulator, daemon: Daemon
) -> None:
    id_ = fire(sim, daemon)
    cards = wait_until(lambda: len(instances(sim)) == 3 and instances(sim), WAIT)
    assert set(cards) == {id_, *(f"{i}.{u}" for i in settled(daemon, "delivered", "people")
                                 for u in ("alice", "bob"))}  # fmt: skip
    group = cards[id_]
    assert group["openSpaceId"] == f"dtv1.card//IM_GROUP.{GROUP}"
    assert group["cardTemplateId"] == "tpl.alert.schema"
    params = group["cardParamMap"]
    assert set(params) == {"title", "markdown", "status", "alert", "runbook_url"}
    assert "DiskFull" in params["title"] and "DiskFull" in params["markdown"]
    assert "/-/act/" not in params["markdown"]  # the buttons are the card's
    assert params["status"] == "告警中" and params["runbook_url"] == "https://wiki.example/DiskFull"
    [send] = show(daemon, id_[-12:])["app_robot_sends"]
    assert send["process_query_key"] == f"card:{id_}"


def test_an_ack_clicked_over_stream_acknowledges_once_and_the_card_says_who(
    sim: Simulator, daemon: Daemon
) -> None:
    id_ = fire(sim, daemon)
    message_id = click(sim, id_, "ack")
    [ack] = wait_until(lambda: acks_of(sim, message_id), WAIT)
    assert ack["code"] == 200
    wait_until(lambda: status(sim, id_) == "已确认，操作人 manager1234", WAIT)
    # No more reminders: the same alert again is not sent.
    again = daemon.post("/am", am_alert_payload("DiskFull", instance="db-1")).json()
    assert (again["messages"], again["not_sent_again_yet"]) == (0, 1)
    # The users' cards are told through PUT /v1.0/card/instances, not a follow-up message.
    wait_until(
        lambda: all(
            c["cardParamMap"]["status"] == "已确认，操作人 manager1234"
            and any(ch["op"] == "updated" for ch in c["changes"])
            for c in instances(sim).values()
        ),
        WAIT,
    )
    assert [m for m in sim.messages(token=APP) if m["kind"] == "app_robot"] == []

    # DingTalk delivers the same click frame again: answered, not acted on twice.
    click(sim, id_, "ack", message_id=message_id)
    wait_until(lambda: len(acks_of(sim, message_id)) == 2, WAIT)
    assert acks_of(sim, message_id)[1]["code"] == 200
    metrics = scrape_metrics(daemon)
    assert metric_value(metrics, "card_clicks_total", outcome="done") == 1
    assert metric_value(metrics, "card_clicks_total", outcome="taken_before") == 1
    assert daemon.log().count("card click by=manager1234 action=ack") == 1
    assert status(sim, id_) == "已确认，操作人 manager1234"


def test_a_click_by_someone_not_allowed_is_refused_on_the_card(
    sim: Simulator, daemon: Daemon
) -> None:
    id_ = fire(sim, daemon)
    message_id = click(sim, id_, "ack", user="intern42")
    wait_until(lambda: acks_of(sim, message_id), WAIT)
    wait_until(lambda: "抱歉 intern42，你无权在这里执行 ack" in status(sim, id_), WAIT)
    again = daemon.post("/am", am_alert_payload("DiskFull", instance="db-1")).json()
    assert again["messages"] == 2  # not acknowledged: the reminder goes to both targets
    assert "no silences" in silence_list(daemon)


def test_silence_1h_clicked_makes_a_silence_and_the_card_says_so(
    sim: Simulator, daemon: Daemon
) -> None:
    id_ = fire(sim, daemon)
    click(sim, id_, "silence_1h")
    wait_until(lambda: status(sim, id_) == "已静默 1 小时，操作人 manager1234", WAIT)
    listed = silence_list(daemon)
    assert 'alertname="DiskFull"' in listed and "manager1234" in listed


def test_the_alert_resolving_turns_its_card_to_resolved(sim: Simulator, daemon: Daemon) -> None:
    id_ = fire(sim, daemon)
    payload = am_alert_payload("DiskFull", "resolved", instance="db-1")
    assert daemon.post("/am", payload).status_code == 200
    wait_until(lambda: status(sim, id_) == "已恢复", WAIT)


def test_a_card_update_dingtalk_did_not_apply_is_sent_again(sim: Simulator, tmp_path: Path) -> None:
    """A card update answered 200 with `result: false` changed nothing on the card: the bridge
    must not count it delivered, but send it again until the card says resolved."""
    sim.control("reset")
    config = daemon_config(sim)
    config["rules"][0]["targets"] = ["room"]  # one card, so one update to follow
    daemon = Daemon(config, directory=tmp_path)
    try:
        id_ = fire(sim, daemon)
        fault = {"path": "/v1.0/card/instances", "count": 1, "action": {"result_false": True}}
        sim.control("faults", fault)
        payload = am_alert_payload("DiskFull", "resolved", instance="db-1")
        assert daemon.post("/am", payload).status_code == 200
        wait_until(lambda: status(sim, id_) == "已恢复", WAIT)
        updates = [
            r for r in requests.get(f"{sim.url}/_sim/requests", timeout=5).json()["requests"]
            if r["path"] == "/v1.0/card/instances"
        ]  # fmt: skip
        assert [r["fault"] for r in updates] == ["result_false", None]
        assert "did not apply it (result false)" in daemon.log()
        assert "reason=dingtalk_busy" in daemon.log()
        assert len(instances(sim)[id_]["changes"]) == 1  # the one applied
    finally:
        daemon.stop()


@pytest.mark.parametrize(
    ("group", "why"),
    [("cidNotOurs==", "机器人不在该群中"), ("cidGone==", "群已解散")],
)
def test_a_card_delivered_nowhere_is_a_dead_letter_not_delivered(
    sim: Simulator, tmp_path: Path, group: str, why: str
) -> None:
    """createAndDeliver answers 200 and success for a space the card never reaches; only its
    deliverResults say so. The bridge must read them, not count the card as delivered."""
    sim.control("reset")
    config = daemon_config(sim)
    config["targets"]["room"]["open_conversation_id"] = group
    config["rules"][0]["targets"] = ["room"]
    daemon = Daemon(config, directory=tmp_path)
    try:
        assert daemon.post("/am", am_alert_payload("DiskFull", instance="db-1")).status_code == 200
        [id_] = wait_until(lambda: settled(daemon, "dead letter", "room"), WAIT)
        assert settled(daemon, "delivered", "room") == []
        shown = show(daemon, id_[-12:])
        assert (shown["status"], shown["reason"], shown["errmsg"]) == (
            "dead",
            "dingtalk_config",
            why,
        )
        assert f"DingTalk did not deliver the card to IM.{group} ({why})" in daemon.log()
        assert instances(sim) == {}  # no card anywhere
        metrics = scrape_metrics(daemon)
        assert metric_value(metrics, "dead_letters_total", target="room") == 1
    finally:
        daemon.stop()
