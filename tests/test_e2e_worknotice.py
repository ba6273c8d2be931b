"""Work notices end to end: the real daemon, the simulator as DingTalk, and what DingTalk
drops silently (same content today, the daily limit, unknown users) seen through getsendresult.

Each test has its own target (and user) so that DingTalk's per-user memory of the day, which the
simulator keeps like the real one, does not carry from one test into the next.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.harness import (
    Daemon,
    Simulator,
    am_alert_payload,
    bridge_cli,
    metric_value,
    scrape_metrics,
    wait_until,
)

SECRET = "app-secret-value"
USERS = ["alice", "bob", "carol", "dave", "erin"]
WAIT = 30.0
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    app = {"app_secret": SECRET, "agent_id": 4242, "users": USERS}
    sim = Simulator(
        spec={
            "apps": {
                "app-main": app,
                "app-retry": app,  # its own app, so a fault can be aimed at it alone
                "app-small": {**app, "daily_limit": 1},
                "app-slow": {**app, "result_delay": 4},
            }
        }
    )
    yield sim
    sim.stop()


def notice_target(sim: Simulator, app: str, users: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "type": "work_notice",
        "app_key": app,
        "app_secret": SECRET,
        "agent_id": 4242,
        "userids": users,
        "api_base": sim.url,
        **extra,
    }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wn")


def config_for(sim: Simulator) -> dict[str, Any]:
    targets = {
        "alice": notice_target(sim, "app-main", ["alice"]),
        "team": notice_target(sim, "app-main", ["bob", "ghost"]),
        "ghost": notice_target(sim, "app-main", ["ghost"]),
        "limited": notice_target(sim, "app-small", ["carol"]),
        "retry": notice_target(
            sim, "app-retry", ["dave"], timeout="2s", retry={"initial": "1s", "max": "2s"}
        ),
        "slow": notice_target(sim, "app-slow", ["erin"]),
    }
    return {
        "timezone": "Asia/Shanghai",
        "targets": targets,
        # The same notification posted again at once stands for Alertmanager's reminders: no
        # window that would take it for a peer's copy.
        "inputs": {"am": {"type": "alertmanager", "path": "/am", "dedup_window": 0}},
        "rules": [
            {"name": f"to-{name}", "match": {"route": name}, "targets": [name]} for name in targets
        ],
    }


@pytest.fixture(scope="module")
def daemon(sim: Simulator, workdir: Path) -> Iterator[Daemon]:
    daemon = Daemon(config_for(sim), directory=workdir)
    yield daemon
    daemon.stop()


def alert(route: str, name: str = "DiskFull") -> dict[str, Any]:
    return am_alert_payload(name, route=route)


def notices(sim: Simulator, app: str) -> list[dict[str, Any]]:
    return [m for m in sim.messages(token=app) if m["kind"] == "work_notice"]


def received_by(sim: Simulator, app: str, user: str) -> int:
    return sum(m["recipients"].count(user) for m in notices(sim, app))


def settled(daemon: Daemon, word: str, target: str) -> list[str]:
    """Ids in the daemon's log lines `<word> ... target=<target> id=<id>`."""
    pattern = rf"^.*\b{re.escape(word)} rule=\S+ target={target} id=(\S+)"
    return re.findall(pattern, daemon.log(), flags=re.MULTILINE)


def cli(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return bridge_cli(*args[:2], "-c", str(daemon.config_path), *args[2:])


def show(daemon: Daemon, id_: str) -> dict[str, Any]:
    result = cli(daemon, "outbox", "show", id_)
    assert result.returncode == 0, result.stderr
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


def test_five_identical_alerts_in_one_second_all_reach_the_user(
    daemon: Daemon, sim: Simulator
) -> None:
    before = datetime.now(SHANGHAI).replace(microsecond=0, tzinfo=None)
    for _ in range(5):  # Alertmanager sending the same notification again: the same text
        assert daemon.post("/am", alert("alice")).status_code == 200
    after = datetime.now(SHANGHAI).replace(tzinfo=None)
    wait_until(lambda: len(settled(daemon, "delivered", "alice")) == 5, WAIT)
    sent = notices(sim, "app-main")
    assert len(sent) == 5
    assert [m["recipients"] for m in sent] == [["alice"]] * 5  # none dropped as a duplicate
    assert received_by(sim, "app-main", "alice") == 5
    texts = [m["body"]["msg"]["markdown"]["text"] for m in sent]
    assert len(set(texts)) == 5
    # They differ only by the unique line ...
    bodies = {t.rsplit("######", 1)[0] for t in texts}
    assert len(bodies) == 1
    for text in texts:
        found = re.search(r"###### (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) · #[0-9a-f]{12}$", text)
        assert found, text
        # when the bridge accepted it, in the config's zone (Asia/Shanghai), not UTC
        assert before <= datetime.fromisoformat(found.group(1)) <= after, (text, before, after)
    # ... made of each message's own id
    ids = settled(daemon, "delivered", "alice")
    assert {t.rsplit("#", 1)[1] for t in texts} == {i[-12:] for i in ids}
    metrics = scrape_metrics(daemon)
    assert (
        metric_value(metrics, "work_notice_results_total", target="alice", outcome="delivered") == 5
    )
    assert metric_value(metrics, "work_notice_recipients_received_total", target="alice") == 5


def test_a_retry_after_a_timeout_arrives_once(daemon: Daemon, sim: Simulator) -> None:
    # DingTalk takes the first try but answers after the bridge gave up waiting (timeout 2s):
    # the bridge sends again, the same content, and DingTalk's own dedup absorbs the repeat.
    sim.control(
        "faults",
        {
            "path": "/topapi/message/corpconversation/asyncsend_v2",
            "token": "app-retry",
            "count": 1,
            "action": {"delay": 4},
        },
    )
    assert daemon.post("/am", alert("retry")).status_code == 200
    wait_until(lambda: settled(daemon, "delivered", "retry"), WAIT)
    wait_until(lambda: len(notices(sim, "app-retry")) == 2, WAIT)  # the late first try, too
    sent = notices(sim, "app-retry")
    assert sent[0]["body"]["msg"] == sent[1]["body"]["msg"]  # a retry is the same content
    assert received_by(sim, "app-retry", "dave") == 1
    assert [m["forbidden_codes"] for m in sent if m["forbidden"]] == [{"dave": 143106}]
    assert "delivery retry" in daemon.log() and "reason=timeout" in daemon.log()
    [id_] = settled(daemon, "delivered", "retry")
    shown = show(daemon, id_[-12:])
    assert shown["status"] == "delivered"
    assert shown["results"][-1]["received"] == ["dave"]


def test_unknown_user_becomes_a_dead_letter(daemon: Daemon, sim: Simulator) -> None:
    assert daemon.post("/am", alert("ghost")).status_code == 200
    [id_] = wait_until(lambda: settled(daemon, "dead letter", "ghost"), WAIT)
    shown = show(daemon, id_[-12:])
    assert (shown["status"], shown["reason"], shown["errcode"]) == ("dead", "dingtalk_config", None)
    assert "ghost invalid_user" in shown["errmsg"]
    assert shown["results"][-1]["refused"] == [{"userid": "ghost", "errcode": "invalid_user"}]
    metrics = scrape_metrics(daemon)
    assert metric_value(metrics, "dead_letters_total", target="ghost") == 1
    assert metric_value(metrics, "work_notice_results_total", target="ghost", outcome="dead") == 1


def test_user_over_the_daily_limit_becomes_a_dead_letter_that_outbox_retry_resends(
    daemon: Daemon, sim: Simulator
) -> None:
    assert daemon.post("/am", alert("limited", "First")).status_code == 200
    wait_until(lambda: settled(daemon, "delivered", "limited"), WAIT)
    assert daemon.post("/am", alert("limited", "Second")).status_code == 200
    [id_] = wait_until(lambda: settled(daemon, "dead letter", "limited"), WAIT)
    shown = show(daemon, id_[-12:])
    assert (shown["status"], shown["reason"], shown["errcode"]) == ("dead", "rate_limited", 143105)
    listed = json.loads(cli(daemon, "outbox", "list", "--status", "dead", "--json").stdout)
    assert id_ in [r["id"] for r in listed]
    assert received_by(sim, "app-small", "carol") == 1

    assert cli(daemon, "outbox", "retry", id_[-12:]).returncode == 0
    wait_until(lambda: len(notices(sim, "app-small")) == 3, WAIT)  # sent again, refused again
    wait_until(lambda: len(settled(daemon, "dead letter", "limited")) == 2, WAIT)
    metrics = scrape_metrics(daemon)
    assert (
        metric_value(
            metrics, "work_notice_recipients_refused_total", target="limited", errcode="143105"
        )
        == 2
    )


def test_partial_delivery_shows_in_outbox_show_log_and_metrics(
    daemon: Daemon, sim: Simulator
) -> None:
    assert daemon.post("/am", alert("team")).status_code == 200
    [id_] = wait_until(lambda: settled(daemon, "partly delivered", "team"), WAIT)
    line = next(x for x in daemon.log().splitlines() if "partly delivered" in x)
    assert "rule=to-team" in line and "received=1" in line and "refused=1" in line
    assert "errcodes=invalid_user:1" in line
    shown = show(daemon, id_[-12:])
    assert shown["status"] == "delivered"
    [result] = shown["results"]
    assert result["outcome"] == "partial"
    assert result["received"] == ["bob"]
    assert result["refused"] == [{"userid": "ghost", "errcode": "invalid_user"}]
    metrics = scrape_metrics(daemon)
    assert metric_value(metrics, "work_notice_results_total", target="team", outcome="partial") == 1
    assert (
        metric_value(
            metrics, "work_notice_recipients_refused_total", target="team", errcode="invalid_user"
        )
        == 1
    )


def test_a_restart_resumes_waiting_for_the_result(sim: Simulator, tmp_path: Path) -> None:
    """DingTalk knows the outcome 4 s after the send (app-slow): the daemon is stopped before
    that; the message is 'sent', not delivered, and the next daemon settles it."""
    first = Daemon(config_for(sim), directory=tmp_path)
    try:
        assert first.post("/am", alert("slow")).status_code == 200
        wait_until(lambda: "accepted, awaiting result" in first.log(), WAIT)
    finally:
        first.stop()
    assert not settled(first, "delivered", "slow")  # not before DingTalk says who got it
    listed = json.loads(bridge_cli("outbox", "list", "-c", str(first.config_path), "--json").stdout)
    assert [r["status"] for r in listed] == ["sent"]
    second = Daemon(config_for(sim), directory=tmp_path)
    try:
        wait_until(lambda: settled(second, "delivered", "slow"), WAIT)
        assert received_by(sim, "app-slow", "erin") == 1
    finally:
        second.stop()
