"""The app robot end to end: the real daemon, the simulator as DingTalk's v1.0 API. A group and
people (one of them unknown to DingTalk, recorded as refused), the token refreshed after it
expired, a 4xx classified into a dead letter with its code, and `outbox recall`."""

from __future__ import annotations

import re
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
from tests.test_e2e_worknotice import cli, settled, show

SECRET = "app-robot-secret"
WAIT = 30.0
GROUP = "cidGroupOps=="


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    app = {"app_secret": SECRET, "agent_id": 1, "users": ["alice", "bob"], "groups": [GROUP]}
    sim = Simulator(
        spec={
            "apps": {
                "ding-main": app,
                "ding-refresh": app,  # its own app, so its tokens can be expired alone
                "ding-gone": {**app, "disbanded_groups": ["cidGone=="]},
                "ding-storm": app,
                "ding-flow": {**app, "user_rate": 1},  # one message a minute per user
            }
        }
    )
    yield sim
    sim.stop()


def app_robot(sim: Simulator, app: str, **to: Any) -> dict[str, Any]:
    return {"type": "app_robot", "app_key": app, "app_secret": SECRET, "api_base": sim.url, **to}


@pytest.fixture(scope="module")
def daemon(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    targets = {
        "group": app_robot(sim, "ding-main", open_conversation_id=GROUP),
        "people": app_robot(sim, "ding-main", userids=["alice", "ghost"]),
        "ghosts": app_robot(sim, "ding-main", userids=["ghost", "casper"]),
        "refresh": app_robot(sim, "ding-refresh", open_conversation_id=GROUP),
        "gone": app_robot(sim, "ding-gone", open_conversation_id="cidGone=="),
        # 3 calls per 5 s, merging once 3 wait: a storm turns into a digest soon.
        "storm": app_robot(
            sim,
            "ding-storm",
            open_conversation_id=GROUP,
            rate_limit={"messages": 3, "per": "5s"},
            digest={"after": 3},
        ),
        "flow-alice": app_robot(sim, "ding-flow", userids=["alice"]),
        "flow": app_robot(sim, "ding-flow", userids=["alice", "bob"]),
    }
    rules: list[dict[str, Any]] = [
        {"name": f"to-{name}", "match": {"route": name}, "targets": [name]} for name in targets
    ]
    next(r for r in rules if r["name"] == "to-storm")["recall_singles_after_digest"] = True
    config = {
        "targets": targets,
        "inputs": {"am": {"type": "alertmanager", "path": "/am", "dedup_window": 0}},
        "rules": rules,
    }
    daemon = Daemon(config, directory=tmp_path_factory.mktemp("approbot"))
    yield daemon
    daemon.stop()


def robot_messages(sim: Simulator, app: str) -> list[dict[str, Any]]:
    return [m for m in sim.messages(token=app) if m["kind"] == "app_robot"]


def test_a_group_message_is_sent_and_recalled(daemon: Daemon, sim: Simulator) -> None:
    assert daemon.post("/am", am_alert_payload("DiskFull", route="group")).status_code == 200
    [id_] = wait_until(lambda: settled(daemon, "delivered", "group"), WAIT)
    [message] = [m for m in robot_messages(sim, "ding-main") if m["open_conversation_id"]]
    assert message["msg_key"] == "sampleMarkdown" and "DiskFull" in message["msg_param"]["title"]
    shown = show(daemon, id_[-12:])
    assert shown["status"] == "delivered"
    [send] = shown["app_robot_sends"]
    assert send["process_query_key"] == message["process_query_key"]
    assert send["open_conversation_id"] == GROUP and send["recalled_at"] is None

    result = cli(daemon, "outbox", "recall", id_[-12:])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{id_}: recalled" in result.stdout
    assert robot_messages(sim, "ding-main")[0]["recalled"] is True
    assert show(daemon, id_[-12:])["status"] == "recalled"
    again = cli(daemon, "outbox", "recall", id_[-12:])
    assert "already recalled" in again.stdout


def test_people_are_sent_one_to_one_and_an_unknown_user_is_recorded(
    daemon: Daemon, sim: Simulator
) -> None:
    assert daemon.post("/am", am_alert_payload("CpuHigh", route="people")).status_code == 200
    [id_] = wait_until(lambda: settled(daemon, "delivered", "people"), WAIT)
    [message] = [m for m in robot_messages(sim, "ding-main") if m["user_ids"]]
    assert message["user_ids"] == ["alice", "ghost"]
    assert (message["recipients"], message["invalid"]) == (["alice"], ["ghost"])
    assert "refused_users=1" in daemon.log()
    [send] = show(daemon, id_[-12:])["app_robot_sends"]
    assert send["userids"] == ["alice", "ghost"]
    assert send["refused"] == [{"userid": "ghost", "why": "invalid_user"}]
    metrics = scrape_metrics(daemon)
    assert metric_value(metrics, "app_robot_refused_users_total", reason="invalid") == 1
    assert (
        metric_value(metrics, "app_robot_calls_total", api="/v1.0/robot/oToMessages/batchSend") >= 1
    )


def test_a_message_every_user_was_refused_is_not_called_delivered(
    daemon: Daemon, sim: Simulator
) -> None:
    assert daemon.post("/am", am_alert_payload("Boo", route="ghosts")).status_code == 200
    [id_] = wait_until(
        lambda: settled(daemon, "delivered to nobody: DingTalk refused every user", "ghosts"), WAIT
    )
    assert not settled(daemon, "delivered", "ghosts")
    shown = show(daemon, id_[-12:])
    assert shown["status"] == "refused"
    assert [r["userid"] for r in shown["app_robot_sends"][0]["refused"]] == ["ghost", "casper"]


def test_an_expired_token_is_fetched_again(daemon: Daemon, sim: Simulator) -> None:
    assert daemon.post("/am", am_alert_payload("First", route="refresh")).status_code == 200
    wait_until(lambda: settled(daemon, "delivered", "refresh"), WAIT)
    sim.control("apps/ding-refresh/expire-tokens")
    assert daemon.post("/am", am_alert_payload("Second", route="refresh")).status_code == 200
    wait_until(lambda: len(settled(daemon, "delivered", "refresh")) == 2, WAIT)
    assert len(robot_messages(sim, "ding-refresh")) == 2
    assert sim.stats()["apps"]["ding-refresh"]["v1_tokens_issued"] == 2
    refused = [r for r in sim.requests_seen() if r["http_status"] == 401 and r["app_key"] is None]
    assert refused, "the expired token was refused once before the new one was fetched"
    assert not settled(daemon, "dead letter", "refresh")
    assert "delivery retry" not in daemon.log()  # the fresh token was fetched within the call


def test_a_disbanded_group_is_a_dead_letter_with_its_code(daemon: Daemon, sim: Simulator) -> None:
    assert daemon.post("/am", am_alert_payload("Lost", route="gone")).status_code == 200
    [id_] = wait_until(lambda: settled(daemon, "dead letter", "gone"), WAIT)
    shown = show(daemon, id_[-12:])
    assert (shown["status"], shown["reason"], shown["errcode"]) == ("dead", "dingtalk_config", 400)
    assert shown["errmsg"].startswith("group.disbanded")
    assert robot_messages(sim, "ding-gone") == []
    result = cli(daemon, "outbox", "recall", id_[-12:])
    assert result.returncode == 1
    assert "never delivered (a dead letter)" in result.stdout


def test_recall_of_an_unknown_id_says_so(daemon: Daemon) -> None:
    result = cli(daemon, "outbox", "recall", "0123456789abcdef")
    assert result.returncode == 1 and "no message with id" in result.stderr


def test_a_storm_digest_recalls_the_singles_sent_before_it(daemon: Daemon, sim: Simulator) -> None:
    for i in range(3):  # the storm's first alerts go out one by one, using up the window
        assert daemon.post("/am", am_alert_payload(f"Early{i}", route="storm")).status_code == 200
    wait_until(lambda: len(robot_messages(sim, "ding-storm")) == 3, WAIT)
    for i in range(10):  # the rest of it, while the window is used up: they wait, and merge
        assert daemon.post("/am", am_alert_payload(f"Late{i}", route="storm")).status_code == 200
    wait_until(lambda: len(robot_messages(sim, "ding-storm")) == 4, WAIT)
    assert "Late9" in robot_messages(sim, "ding-storm")[3]["text"]  # one digest of the ten
    wait_until(lambda: all(m["recalled"] for m in robot_messages(sim, "ding-storm")[:3]), WAIT)
    sent = robot_messages(sim, "ding-storm")
    assert [m["recalled"] for m in sent] == [True, True, True, False]
    assert "recalling a storm's singles after its digest" in daemon.log()
    early = settled(daemon, "delivered", "storm")[0]
    assert show(daemon, early[-12:])["status"] == "recalled"


def test_flow_controlled_users_get_the_message_later_and_only_they(
    daemon: Daemon, sim: Simulator
) -> None:
    assert daemon.post("/am", am_alert_payload("First", route="flow-alice")).status_code == 200
    wait_until(lambda: settled(daemon, "delivered", "flow-alice"), WAIT)
    assert daemon.post("/am", am_alert_payload("Busy", route="flow")).status_code == 200
    [id_] = wait_until(lambda: settled(daemon, "delivered", "flow"), WAIT)
    busy = robot_messages(sim, "ding-flow")[-1]
    assert (busy["recipients"], busy["flow_controlled"]) == (["bob"], ["alice"])
    line = next(x for x in daemon.log().splitlines() if id_ in x and "delivered" in x)
    follow_up = re.search(r"follow_up=(\S+)", line)
    assert follow_up, line
    [send] = show(daemon, id_[-12:])["app_robot_sends"]
    assert send["refused"] == [{"userid": "alice", "why": "flow_controlled"}]
    waiting = show(daemon, follow_up.group(1))
    assert (waiting["status"], waiting["reason"]) == ("pending", "rate_limited")
    assert "alice" in waiting["errmsg"]
    # A minute later (the simulator's clock moved on; `outbox retry` skips the daemon's wait):
    sim.control("clock", {"advance": 61})
    assert cli(daemon, "outbox", "retry", follow_up.group(1)).returncode == 0
    wait_until(lambda: len(robot_messages(sim, "ding-flow")) == 3, WAIT)
    again = robot_messages(sim, "ding-flow")[-1]
    assert (again["user_ids"], again["recipients"]) == (["alice"], ["alice"])
    assert again["msg_param"] == busy["msg_param"]  # the same message


def test_the_monthly_quota_holds_messages_until_the_month_turns(tmp_path: Path) -> None:
    """DingTalk's answer once the organisation's calls for the month are used up (HTTP 403
    ApiCountLimitForOrg) holds the target, not the message: it waits, asks again, and sends
    once the month turned (here: the simulator's clock moved 40 days on)."""
    app = {"app_secret": SECRET, "agent_id": 1, "groups": [GROUP], "monthly_quota": 2}
    sim = Simulator(spec={"apps": {"ding-quota": app}})
    target = {**app_robot(sim, "ding-quota", open_conversation_id=GROUP)}
    target["retry"] = {"quota_wait": "1s", "initial": "100ms"}
    config = {
        "targets": {"quota": target},
        "inputs": {"am": {"type": "alertmanager", "path": "/am", "dedup_window": 0}},
        "rules": [{"name": "all", "targets": ["quota"]}],
    }
    daemon = Daemon(config, directory=tmp_path)
    try:
        for name in ("One", "Two", "Three"):
            assert daemon.post("/am", am_alert_payload(name)).status_code == 200
        wait_until(lambda: len(robot_messages(sim, "ding-quota")) == 2, WAIT)

        def refused_for_the_month() -> float:
            return metric_value(
                scrape_metrics(daemon), "send_failures_total", target="quota", reason="quota",
                errcode="403",
            )  # fmt: skip

        wait_until(lambda: refused_for_the_month() >= 2, WAIT)  # asked again after quota_wait
        state = requests.get(f"{daemon.url}/-/ready", timeout=5).json()
        assert state["queues"]["quota"]["pending"] == 1, state
        assert state["queues"]["quota"]["robot_locked_until"] is not None, state
        assert state["store"]["dead_letters"] == 0, state
        assert len(robot_messages(sim, "ding-quota")) == 2

        sim.control("clock", {"advance": 40 * 86_400})
        wait_until(lambda: len(robot_messages(sim, "ding-quota")) == 3, WAIT)
        assert "Three" in robot_messages(sim, "ding-quota")[2]["msg_param"]["title"]
    finally:
        daemon.stop()
        sim.stop()
