"""One-tap actions against the real daemon and the simulator: an alert arrives in the chat with
signed links; opening one shows what it will do and does nothing; confirming silences (the
silence is listed by `dingtalk-bridge silence list`, the next identical alert is silenced, and
the chat is told who did it) or acks (no more reminders); the same link is refused when used
again, altered or expired; an actionCard rule carries the links as buttons."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness import Daemon, Simulator, am_alert_payload, bridge_cli

BASE = "https://bridge.example.com"  # what the links say; the test calls the daemon instead
TOKEN = "tok-act"
LINK = re.compile(r"\[([^\]]+)\]\((https://bridge\.example\.com/-/act/[A-Za-z0-9_.-]+)\)")


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    sim = Simulator(spec={"robots": {TOKEN: {"rate_per_minute": 0}}})
    yield sim
    sim.stop()


def daemon_config(sim: Simulator, ttl: str = "1h") -> dict[str, Any]:
    return {
        "actions": {"base_url": BASE, "ttl": ttl, "silence": ["1h", "4h"]},
        "targets": {
            "ops": {"type": "robot", "webhook": sim.robot_url(TOKEN), "rate_limit": {"messages": 0}}
        },
        # Reminders are posted at once here, standing for ones after repeat_interval.
        "inputs": {"am": {"type": "alertmanager", "path": "/am", "dedup_window": 0}},
        "rules": [
            {
                "name": "cards",
                "match": {"alertname": "CardAlert"},
                "targets": ["ops"],
                "msgtype": "actionCard",
                "url": "{{ alerts[0].generatorURL }}",
                "actions": ["ack", "silence"],
            },
            {"name": "all", "targets": ["ops"], "actions": ["ack", "silence", "runbook"]},
        ],
    }


@pytest.fixture
def daemon(sim: Simulator, tmp_path: Path) -> Iterator[Daemon]:
    sim.control("reset")
    daemon = Daemon(daemon_config(sim), directory=tmp_path)
    yield daemon
    daemon.stop()


def alert_message(sim: Simulator, daemon: Daemon, alertname: str, **labels: str) -> str:
    """Post a firing alert; the markdown text it arrives in the chat as."""
    before = len(sim.messages(token=TOKEN))
    payload = am_alert_payload(alertname, **labels)
    payload["alerts"][0]["annotations"]["runbook_url"] = f"https://wiki.example/{alertname}"
    assert daemon.post("/am", payload).json()["messages"] == 1
    messages = sim.wait_messages(before + 1, token=TOKEN)
    text: str = messages[before]["text"]
    return text


def links(text: str) -> dict[str, str]:
    """Each link of a message by its words, as a URL of the daemon under test."""
    return {title: url for title, url in LINK.findall(text)}


def local(url: str, daemon: Daemon) -> str:
    return daemon.url + url.removeprefix(BASE)


def silence_list(daemon: Daemon) -> str:
    listed = bridge_cli("silence", "list", "-c", str(daemon.config_path))
    assert listed.returncode == 0, listed.stderr
    return listed.stdout


def test_a_silence_link_shows_then_silences_once_and_says_so_in_the_chat(
    sim: Simulator, daemon: Daemon
) -> None:
    text = alert_message(sim, daemon, "DiskFull", instance="db-1")
    found = links(text)
    assert list(found) == ["确认", "静默 1 小时", "静默 4 小时"]
    assert "[处理手册](https://wiki.example/DiskFull)" in text
    url = local(found["静默 1 小时"], daemon)

    page = requests.get(url, timeout=10)  # a preview, a scanner, the person: nothing is done
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "静默 DiskFull（db-1） 1 小时？" in page.text and '<form method="post">' in page.text
    assert "no silences" in silence_list(daemon)

    done = requests.post(url, data={"who": "张三"}, timeout=10)
    assert done.status_code == 200, done.text
    assert "DiskFull（db-1）：已静默 1 小时，操作人 张三" in done.text
    listed = silence_list(daemon)
    assert 'alertname="DiskFull"' in listed and 'instance="db-1"' in listed and "张三" in listed
    follow_up = sim.wait_messages(2, token=TOKEN)[1]
    assert follow_up["msgtype"] == "text"
    assert follow_up["text"] == "DiskFull（db-1）：已静默 1 小时，操作人 张三"
    # The next identical alert is silenced; another instance is not.
    again = am_alert_payload("DiskFull", instance="db-1")
    assert daemon.post("/am", again).json()["silenced"] == 1
    assert daemon.post("/am", am_alert_payload("DiskFull", instance="db-2")).json()["messages"] == 1

    replayed = requests.post(url, data={"who": "李四"}, timeout=10)
    assert replayed.status_code == 409 and "此链接已被使用过" in replayed.text
    reopened = requests.get(url, timeout=10)  # its page now says so, with no button
    assert reopened.status_code == 409 and "<form" not in reopened.text
    token_at = url.index("/-/act/") + len("/-/act/") + 10
    altered = url[:token_at] + ("A" if url[token_at] != "A" else "B") + url[token_at + 1 :]
    forged = requests.post(altered, data={"who": "x"}, timeout=10)
    assert forged.status_code == 403 and "此链接已被修改" in forged.text
    assert silence_list(daemon).count("DiskFull") == 1
    assert "李四" not in daemon.log()
    assert "one-tap action action=silence" in daemon.log() and "source=127.0.0.1" in daemon.log()


def test_an_ack_link_stops_the_reminders_and_says_so(sim: Simulator, daemon: Daemon) -> None:
    text = alert_message(sim, daemon, "CPUHigh")
    url = local(links(text)["确认"], daemon)
    assert daemon.post("/am", am_alert_payload("CPUHigh")).json()["messages"] == 1  # reminder
    assert requests.get(url, timeout=10).status_code == 200
    done = requests.post(url, data={"who": "oncall"}, timeout=10)
    assert done.status_code == 200 and "已确认，操作人 oncall" in done.text, done.text
    messages = sim.wait_messages(3, token=TOKEN)
    assert (
        messages[2]["text"].startswith("CPUHigh") and "已确认，操作人 oncall" in messages[2]["text"]
    )
    again = daemon.post("/am", am_alert_payload("CPUHigh")).json()
    assert (again["messages"], again["not_sent_again_yet"]) == (0, 1)
    assert requests.post(url, timeout=10).status_code == 409  # used


def test_an_action_card_carries_the_links_as_buttons(sim: Simulator, daemon: Daemon) -> None:
    assert daemon.post("/am", am_alert_payload("CardAlert")).json()["messages"] == 1
    [message] = sim.wait_messages(1, token=TOKEN)
    card = message["body"]["actionCard"]
    titles = [b["title"] for b in card["btns"]]
    assert titles == ["查看详情", "确认", "静默 1 小时", "静默 4 小时"]
    assert card["btns"][0]["actionURL"].startswith("http://")  # the rule's url: generatorURL
    assert all(b["actionURL"].startswith(f"{BASE}/-/act/") for b in card["btns"][1:])
    resolved = am_alert_payload("CardAlert", status="resolved")
    assert daemon.post("/am", resolved).json()["messages"] == 1
    card = sim.wait_messages(2, token=TOKEN)[1]["body"]["actionCard"]
    assert "btns" not in card and card["singleTitle"] == "查看详情"  # resolved: nothing to do


def test_an_expired_link_is_refused(sim: Simulator, tmp_path: Path) -> None:
    sim.control("reset")
    daemon = Daemon(daemon_config(sim, ttl="1s"), directory=tmp_path)
    try:
        url = local(links(alert_message(sim, daemon, "DiskFull"))["静默 1 小时"], daemon)
        time.sleep(1.2)
        for method in ("GET", "POST"):
            answer = requests.request(method, url, timeout=10)
            assert answer.status_code == 410 and "此链接已过期" in answer.text
        assert "no silences" in silence_list(daemon)
    finally:
        daemon.stop()
