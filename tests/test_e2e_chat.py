"""Commands from the chat (`dingtalk_robot` input) against the real daemon: DingTalk's sign
check, who may change things, and a silence made in the chat stopping the next matching alert."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness import Daemon, Simulator, am_alert_payload, wait_until

SECRET = "robot-app-secret"
SESSION = "chat-session-1"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    sim = Simulator(spec={"robots": {"tok-chat": {"rate_per_minute": 0}}})
    yield sim
    sim.stop()


def daemon_config(sim: Simulator) -> dict[str, Any]:
    return {
        "targets": {
            "ops": {
                "type": "robot",
                "webhook": sim.robot_url("tok-chat"),
                "rate_limit": {"messages": 0},
            }
        },
        "inputs": {
            # Reminders are posted at once here, standing for ones after repeat_interval: no
            # window that would take them for a peer's copies.
            "am": {"type": "alertmanager", "path": "/am", "dedup_window": 0},
            "chat": {
                "type": "dingtalk_robot",
                "path": "/dingtalk/robot",
                "app_secret": SECRET,
                "allow": {"staff_ids": ["oncall-1"], "admins": True},
            },
        },
        "rules": [{"name": "all", "inputs": ["am"], "targets": ["ops"]}],
        # The answers in English, as the assertions below read them; the default (zh-CN) and
        # the Chinese command names are test_chinese_commands_get_chinese_answers'.
        "locale": "en",
    }


@pytest.fixture
def daemon(sim: Simulator, tmp_path: Path) -> Iterator[Daemon]:
    sim.control("reset")
    daemon = Daemon(daemon_config(sim), directory=tmp_path)
    yield daemon
    daemon.stop()


def sign(timestamp: str, secret: str = SECRET) -> str:
    import base64
    import hashlib
    import hmac

    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def say(
    daemon: Daemon,
    sim: Simulator,
    text: str,
    staff: str = "oncall-1",
    admin: bool = False,
    session: bool = True,
    timestamp: str | None = None,
    signature: str | None = None,
) -> requests.Response:
    """An @-message the way DingTalk posts it (reference §5.3)."""
    ts = timestamp or str(int(time.time() * 1000))
    body: dict[str, Any] = {
        "msgtype": "text",
        "text": {"content": f" {text}"},
        "senderStaffId": staff,
        "senderNick": staff.upper(),
        "isAdmin": admin,
        "conversationType": "2",
        "conversationId": "cid-1",
    }
    if session:
        body["sessionWebhook"] = f"{sim.url}/robot/sendBySession?session={SESSION}"
    return requests.post(
        f"{daemon.url}/dingtalk/robot",
        json=body,
        headers={"timestamp": ts, "sign": signature or sign(ts)},
        timeout=10,
    )


def replies(sim: Simulator) -> list[str]:
    return [m["text"] for m in sim.messages(token=SESSION)]


def test_help_is_answered_in_the_http_response_without_a_session_webhook(
    sim: Simulator, daemon: Daemon
) -> None:
    answer = say(daemon, sim, "help", session=False)
    assert answer.status_code == 200
    body = answer.json()
    assert body["msgtype"] == "text" and "silence <matchers>" in body["text"]["content"]
    assert body["at"] == {"atUserIds": ["oncall-1"]}
    assert body["text"]["content"].startswith("@oncall-1 ")  # so the mention pings


def test_chatid_tells_the_group_its_open_conversation_id(sim: Simulator, daemon: Daemon) -> None:
    """What an app_robot target needs to send into this group, read from DingTalk's message."""
    assert say(daemon, sim, "chatid", staff="dev-7").status_code == 200
    assert "This chat's open_conversation_id is cid-1" in replies(sim)[-1]


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("bad sign", 401, "unauthorized"),
        ("other secret", 401, "unauthorized"),
        ("stale", 400, "stale"),
    ],
)
def test_requests_that_are_not_from_dingtalk_are_refused(
    sim: Simulator, daemon: Daemon, case: str, status: int, reason: str
) -> None:
    if case == "bad sign":
        answer = say(daemon, sim, "status", signature="AAAA")
    elif case == "other secret":
        ts = str(int(time.time() * 1000))
        answer = say(daemon, sim, "status", timestamp=ts, signature=sign(ts, "guessed"))
    else:
        old = str(int((time.time() - 7200) * 1000))
        answer = say(daemon, sim, "status", timestamp=old, signature=sign(old))
    assert (answer.status_code, answer.json()["reason"]) == (status, reason)
    assert replies(sim) == []
    assert f"reason={reason}" in daemon.log()


def test_a_silence_from_the_chat_stops_the_next_matching_alert_until_expired(
    sim: Simulator, daemon: Daemon
) -> None:
    assert say(daemon, sim, "silence alertname=DiskFull 2h disk swap tonight").status_code == 200
    wait_until(lambda: len(replies(sim)) == 1)
    reply = replies(sim)[0]
    assert 'Silenced alertname="DiskFull"' in reply and "by ONCALL-1" in reply
    silence_id = reply.split(", id ")[1].split(",")[0]
    # The next DiskFull is swallowed; another alert is not.
    assert daemon.post("/am", am_alert_payload("DiskFull")).json()["silenced"] == 1
    assert daemon.post("/am", am_alert_payload("CPUHigh")).json()["messages"] == 1
    wait_until(lambda: len(sim.messages(token="tok-chat")) == 1)
    say(daemon, sim, "silences", staff="visitor")  # reading is open to everyone
    wait_until(lambda: len(replies(sim)) == 2)
    assert silence_id in replies(sim)[1] and "disk swap tonight" in replies(sim)[1]
    say(daemon, sim, f"expire {silence_id}")
    wait_until(lambda: len(replies(sim)) == 3)
    assert f"Silence {silence_id} expired" in replies(sim)[2]
    assert daemon.post("/am", am_alert_payload("DiskFull", disk="2")).json()["messages"] == 1


def test_only_allowed_senders_may_change_things(sim: Simulator, daemon: Daemon) -> None:
    say(daemon, sim, "silence alertname=X 1h", staff="visitor")
    wait_until(lambda: len(replies(sim)) == 1)
    assert "you may not silence" in replies(sim)[0]
    say(daemon, sim, "silence alertname=X 1h", staff="visitor", admin=True)  # admins may
    wait_until(lambda: len(replies(sim)) == 2)
    assert "Silenced" in replies(sim)[1]
    say(daemon, sim, "status", staff="visitor")
    wait_until(lambda: len(replies(sim)) == 3)
    assert "Active silences: 1" in replies(sim)[2] and "ops: 0 waiting" in replies(sim)[2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("silence 2h", "Give matchers before the duration"),
        ("silence alertname=X", "Add a duration"),
        ("silence alertname~X 2h", "alertname~X"),
        ("silence alertname=X 999999999d", "A silence lasts at most 365d"),
        ("silence alertname=X 366d", "A silence lasts at most 365d"),
        ("expire", "Usage: expire <id>"),
        ("expire nosuchid", "No single active silence"),
        ("reboot everything", "I do not know the command reboot."),
    ],
)
def test_mistakes_get_a_helpful_answer(
    sim: Simulator, daemon: Daemon, text: str, expected: str
) -> None:
    say(daemon, sim, text)
    wait_until(lambda: len(replies(sim)) == 1)
    assert expected in replies(sim)[0]
    assert SECRET not in daemon.log()


def test_ack_stops_reminders_until_the_alert_resolves(sim: Simulator, daemon: Daemon) -> None:
    # The rule repeats every notification (Alertmanager-fed rules default to repeat_interval 0).
    daemon.post("/am", am_alert_payload("DiskFull"))
    wait_until(lambda: len(sim.messages(token="tok-chat")) == 1)
    text = sim.messages(token="tok-chat")[0]["text"]
    short_id = text.rsplit("id `", 1)[1].split("`")[0]
    assert daemon.post("/am", am_alert_payload("DiskFull")).json()["messages"] == 1  # a reminder
    say(daemon, sim, f"ack {short_id}", staff="visitor")  # not allowed
    say(daemon, sim, f"ack {short_id}")
    wait_until(lambda: len(replies(sim)) == 2)
    assert "you may not ack" in replies(sim)[0]
    assert f"ONCALL-1 acknowledged {short_id}" in replies(sim)[1]
    again = daemon.post("/am", am_alert_payload("DiskFull")).json()
    assert (again["messages"], again["not_sent_again_yet"]) == (0, 1)
    # Resolving is news, and ends the acknowledgement: the next firing is sent again.
    assert (
        daemon.post("/am", am_alert_payload("DiskFull", status="resolved")).json()["messages"] == 1
    )
    assert daemon.post("/am", am_alert_payload("DiskFull")).json()["messages"] == 1
    say(daemon, sim, "ack ffffffff")
    wait_until(lambda: len(replies(sim)) == 3)
    assert "no firing alert with id ffffffff" in replies(sim)[2]


def test_chinese_commands_get_chinese_answers(sim: Simulator, tmp_path: Path) -> None:
    """The config's default locale (zh-CN): a group that works in Chinese types the commands'
    Chinese names and reads Chinese answers; the English names work there too."""
    sim.control("reset")
    config = daemon_config(sim)
    del config["locale"]
    daemon = Daemon(config, directory=tmp_path)
    try:
        daemon.post("/am", am_alert_payload("DiskFull"))
        wait_until(lambda: len(sim.messages(token="tok-chat")) == 1)
        text = sim.messages(token="tok-chat")[0]["text"]
        short_id = text.rsplit("id `", 1)[1].split("`")[0]
        say(daemon, sim, "帮助")
        say(daemon, sim, "静默 alertname=Other 2h 换盘")
        say(daemon, sim, f"确认 {short_id}")
        say(daemon, sim, "status", staff="dev-7")
        say(daemon, sim, "确认 ffffffff", staff="visitor")
        wait_until(lambda: len(replies(sim)) == 5)
        helped, silenced, acked, status, refused = replies(sim)
        assert (
            "我能理解这些命令：" in helped
            and "silence <matchers> <duration> [comment] (静默)" in helped
        )
        assert 'alertname="Other"' in silenced and "（2 小时），ID " in silenced
        assert f"ONCALL-1 已确认 {short_id}（规则 all）：恢复前不再提醒。" in acked
        assert "队列：" in status and "生效中的静默：1" in status
        assert "抱歉 VISITOR，你无权在这里执行 确认" in refused
    finally:
        daemon.stop()


def test_a_timestamp_and_sign_are_used_once(sim: Simulator, daemon: Daemon) -> None:
    """DingTalk's sign covers the timestamp only: the headers of a captured request would carry
    any body for the whole hour. Each pair is used once, whatever the body, also after a
    restart of the daemon."""
    ts = str(int(time.time() * 1000))
    assert say(daemon, sim, "status", staff="visitor", timestamp=ts).status_code == 200
    wait_until(lambda: len(replies(sim)) == 1)
    forged = say(daemon, sim, "silence alertname=X 1h", staff="visitor", admin=True, timestamp=ts)
    assert (forged.status_code, forged.json()["reason"]) == (409, "replay")
    same = say(daemon, sim, "status", staff="visitor", timestamp=ts)
    assert (same.status_code, same.json()["reason"]) == (409, "replay")
    assert daemon.post("/am", am_alert_payload("X")).json()["silenced"] == 0  # no silence made
    daemon.stop()
    restarted = Daemon(daemon_config(sim), directory=daemon.dir)
    try:
        again = say(restarted, sim, "silence alertname=X 1h", admin=True, timestamp=ts)
        assert (again.status_code, again.json()["reason"]) == (409, "replay")
        fresh = say(restarted, sim, "status", staff="visitor")  # a new timestamp: fine
        assert fresh.status_code == 200
        wait_until(lambda: len(replies(sim)) == 2)
    finally:
        restarted.stop()
    assert replies(sim)[0].startswith("@visitor") and "Silenced" not in "".join(replies(sim))


@pytest.mark.parametrize(("seconds", "status"), [(30, 200), (58 * 60, 400), (-50 * 60, 200)])
def test_the_window_is_an_hour_back_and_a_minute_ahead(
    sim: Simulator, daemon: Daemon, seconds: int, status: int
) -> None:
    ts = str(int((time.time() + seconds) * 1000))
    answer = say(daemon, sim, "status", timestamp=ts)
    assert answer.status_code == status, answer.text
    if status == 400:
        assert answer.json()["reason"] == "stale"
        assert "in the future" in answer.json()["error"]
        assert replies(sim) == []
    else:
        wait_until(lambda: len(replies(sim)) == 1)


# Latin-1 b"\xb2\xb3\xb9" reads "²³¹", which str.isdigit() took and int() did not (a 500).
@pytest.mark.parametrize(
    "timestamp",
    [b"\xb2\xb3\xb9", "１７００００００００００".encode(), b"-1", b"1" * 17, b"1700000000000.5"],
)
def test_a_timestamp_that_is_not_ascii_milliseconds_is_a_400(
    sim: Simulator, daemon: Daemon, timestamp: bytes
) -> None:
    headers = {"timestamp": timestamp, "sign": sign(timestamp.decode("latin-1")).encode()}
    answer = requests.post(f"{daemon.url}/dingtalk/robot", data=b"{}", headers=headers, timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json()["reason"] == "bad_request"


def store_bad_silences(daemon: Daemon) -> None:
    """Rows an earlier version (without bounds) or a hand edit left in the store: an end time
    no calendar shows, and matchers that no longer parse."""
    import json
    import sqlite3

    far = time.time() + 999_999_999 * 86_400.0
    with sqlite3.connect(daemon.dir / "state" / "state.db") as conn:
        conn.execute(
            "INSERT INTO silences (id, matchers, starts_at, ends_at, comment, author, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            ("farfuture01", json.dumps(["alertname=Far"]), time.time(), far, "", "old", 0.0),
        )
        conn.execute(
            "INSERT INTO silences (id, matchers, starts_at, ends_at, comment, author, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            ("brokenrow01", "not json [", time.time(), time.time() + 60, "", "old", 0.0),
        )


def test_silences_are_listed_despite_bad_rows_already_stored(
    sim: Simulator, daemon: Daemon
) -> None:
    store_bad_silences(daemon)
    time.sleep(1.2)  # the daemon re-reads runtime silences every second
    response = say(daemon, sim, "silences", staff="visitor")
    assert response.status_code == 200, response.text
    wait_until(lambda: len(replies(sim)) == 1)
    assert 'farfuture01 alertname="Far" until after 9999' in replies(sim)[0]
    assert "brokenrow01" not in replies(sim)[0]  # unreadable: skipped, and the log says so
    assert say(daemon, sim, "status").status_code == 200
    wait_until(lambda: len(replies(sim)) == 2)
    # The far silence still works as a silence.
    assert daemon.post("/am", am_alert_payload("Far")).json()["silenced"] == 1
    wait_until(lambda: "brokenrow01" in daemon.log() and "skipped" in daemon.log())
    assert "Traceback" not in daemon.log()
