"""Message -> robot JSON: shapes of all five msgtypes, keywords, mentions and the byte limit."""

from __future__ import annotations

import json

import pytest

from bridge.config.model import WorkNoticeTarget
from bridge.dingtalk.robot import ROBOT_MAX_BYTES, robot_bodies, robot_body
from bridge.dingtalk.sizing import TRUNCATED_MARKER, encode
from bridge.dingtalk.worknotice import work_notice_body
from bridge.model import Button, Link, Mention, Message
from bridge.simulator.shapes import check_robot_message, check_work_notice_msg

MESSAGES = {
    "text": Message("text", "T", "disk full"),
    "markdown": Message("markdown", "T", "### disk full"),
    "link": Message("link", "T", "disk full", url="http://x/1", pic_url="http://x/p.png"),
    "actionCard-single": Message("actionCard", "T", "disk full", url="http://x/1"),
    "actionCard-buttons": Message(
        "actionCard",
        "T",
        "disk full",
        buttons=(Button("Ack", "http://x/a"), Button("Silence", "http://x/s")),
        btn_orientation="1",
    ),
    "feedCard": Message("feedCard", "T", "", links=(Link("a", "http://x/1", "http://x/p"),)),
}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_every_msgtype_has_the_shape_dingtalk_accepts(name: str) -> None:
    body = robot_body(MESSAGES[name])
    assert body["msgtype"] == MESSAGES[name].msgtype
    assert check_robot_message(body) is None


def test_action_card_buttons_use_robot_casing() -> None:
    card = robot_body(MESSAGES["actionCard-buttons"])["actionCard"]
    assert card["btns"] == [
        {"title": "Ack", "actionURL": "http://x/a"},
        {"title": "Silence", "actionURL": "http://x/s"},
    ]
    assert card["btnOrientation"] == "1"


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (Message("text", "t", "disk full"), ("text", "content")),
        (Message("markdown", "t", "### FIRING disk"), ("markdown", "text")),
        (Message("link", "t", "disk", url="http://x"), ("link", "text")),
    ],
)
def test_keyword_added_when_missing(message: Message, field: tuple[str, str]) -> None:
    body = robot_body(message, keywords=("告警", "alert"))
    assert "告警" in body[field[0]][field[1]]


def test_keyword_keeps_markdown_heading() -> None:
    body = robot_body(Message("markdown", "t", "### FIRING disk"), keywords=("告警",))
    assert body["markdown"]["text"].startswith("### 告警 FIRING disk")
    assert body["markdown"]["title"].startswith("告警")


def test_keyword_already_present_is_not_repeated() -> None:
    body = robot_body(Message("text", "t", "alert: disk full"), keywords=("告警", "alert"))
    assert body["text"]["content"] == "alert: disk full"


def test_feed_card_keyword_goes_into_a_title() -> None:
    body = robot_body(MESSAGES["feedCard"], keywords=("告警",))
    assert body["feedCard"]["links"][0]["title"].startswith("告警")


def test_mentions_are_in_at_and_in_the_text() -> None:
    mention = Mention(mobiles=("13800000000",), userids=("u1",), all=False)
    for msgtype, path in (("text", ("text", "content")), ("markdown", ("markdown", "text"))):
        body = robot_body(Message(msgtype, "t", "disk full", mention=mention))  # type: ignore[arg-type]
        text = body[path[0]][path[1]]
        assert "@13800000000" in text and "@u1" in text
        assert body["at"] == {"atMobiles": ["13800000000"], "atUserIds": ["u1"], "isAtAll": False}


def test_mention_already_in_text_is_not_duplicated() -> None:
    body = robot_body(
        Message("text", "t", "ping @13800000000", mention=Mention(mobiles=("13800000000",)))
    )
    assert body["text"]["content"].count("@13800000000") == 1


def test_at_all() -> None:
    body = robot_body(Message("markdown", "t", "x", mention=Mention(all=True)))
    assert body["at"]["isAtAll"] is True


@pytest.mark.parametrize(
    "unit",
    ["a", "告", "\n", '"', "\x01", "🔥"],  # 1, 3 bytes; escaped 2 bytes (\n, \"), 6 (\u0001); 4
)
def test_oversized_body_is_cut_to_the_limit_in_utf8_json_bytes(unit: str) -> None:
    mention = Mention(mobiles=("13800000000",))
    message = Message("markdown", "title", unit * 30_000, mention=mention)
    body = robot_body(message, keywords=("告警",))
    size = len(encode(body))
    assert size <= ROBOT_MAX_BYTES
    assert size > ROBOT_MAX_BYTES - 16  # cut close to the limit, not far below it
    text = body["markdown"]["text"]
    assert TRUNCATED_MARKER in text
    assert text.endswith("@13800000000")  # the mention survives the cut
    json.loads(encode(body))  # still valid JSON and valid UTF-8


def test_body_at_the_limit_is_not_cut() -> None:
    overhead = len(encode(robot_body(Message("text", "t", ""))))
    body = robot_body(Message("text", "t", "x" * (ROBOT_MAX_BYTES - overhead)))
    assert len(encode(body)) == ROBOT_MAX_BYTES
    assert TRUNCATED_MARKER not in body["text"]["content"]


def test_feed_card_drops_trailing_links_to_fit() -> None:
    links = tuple(Link("告" * 200, f"http://x/{i}", "http://x/p") for i in range(100))
    body = robot_body(Message("feedCard", "t", "", links=links))
    assert len(encode(body)) <= ROBOT_MAX_BYTES
    assert 1 <= len(body["feedCard"]["links"]) < 100
    assert body["feedCard"]["links"][0]["messageURL"] == "http://x/0"


WN = WorkNoticeTarget(
    name="wn", app_key="k", app_secret="s", agent_id=42, userids=("u1", "u2"), dept_ids=("7", "8")
)


@pytest.mark.parametrize("name", sorted(set(MESSAGES) - {"feedCard"}))
def test_work_notice_bodies_have_the_shape_dingtalk_accepts(name: str) -> None:
    body = work_notice_body(WN, MESSAGES[name], "2026-11-28 10:00:00 · #abcd1234")
    assert check_work_notice_msg(body["msg"]) is None
    assert body["agent_id"] == 42
    assert body["userid_list"] == "u1,u2"  # comma-separated strings, not arrays
    assert body["dept_id_list"] == "7,8"


def test_work_notice_action_card_is_snake_case() -> None:
    body = work_notice_body(WN, MESSAGES["actionCard-buttons"], "u")
    assert body["msg"]["msgtype"] == "action_card"
    card = body["msg"]["action_card"]
    assert card["btn_json_list"] == [
        {"title": "Ack", "action_url": "http://x/a"},
        {"title": "Silence", "action_url": "http://x/s"},
    ]
    assert "disk full" in card["markdown"]


def test_work_notices_differ_by_their_unique_line() -> None:
    a = work_notice_body(WN, MESSAGES["markdown"], "10:00:00 · #aaaa")
    b = work_notice_body(WN, MESSAGES["markdown"], "10:00:01 · #bbbb")
    assert a["msg"] != b["msg"]
    assert a["msg"]["markdown"]["text"].startswith("### disk full")


SPLIT_CASES = {
    "many short lines": "\n".join(f"{i}: alert line 告警 with some text" for i in range(1500)),
    "one huge ascii line": "x" * 30_000 + "\ntail",
    "one huge cjk line": "告" * 9_000 + "\ntail",
}


@pytest.mark.parametrize("case", sorted(SPLIT_CASES))
def test_long_markdown_is_split_into_numbered_parts(case: str) -> None:
    text = "### Big\n" + SPLIT_CASES[case]
    mention = Mention(mobiles=("13800000000",))
    bodies = robot_bodies(Message("markdown", "Big", text, mention=mention), keywords=("告警",))
    total = len(bodies)
    assert total > 1
    for index, body in enumerate(bodies, start=1):
        assert len(encode(body)) <= ROBOT_MAX_BYTES
        assert check_robot_message(body) is None
        assert body["markdown"]["title"].endswith(f"({index}/{total})")
        assert "告警" in body["markdown"]["text"]
    # Only the first part pages people.
    assert bodies[0]["at"]["atMobiles"] == ["13800000000"]
    assert "@13800000000" in bodies[0]["markdown"]["text"]
    assert all(b["at"]["atMobiles"] == [] for b in bodies[1:])
    joined = "\n".join(b["markdown"]["text"] for b in bodies)
    if case == "many short lines":  # cut only between lines: every line whole, in order
        lines = [line for line in text.split("\n")[1:]]
        positions = [
            joined.index("\n" + line + "\n") if line != lines[-1] else joined.rindex(line)
            for line in lines[::100]
        ]
        assert positions == sorted(positions)
    else:  # nothing lost from a line longer than a part
        char = "x" if "ascii" in case else "告"
        assert joined.count(char) - sum(b["markdown"]["text"].count("告警") for b in bodies) * (
            char == "告"
        ) == SPLIT_CASES[case].count(char)


def test_truncate_mode_keeps_one_body() -> None:
    message = Message("text", "t", "a\n" * 20_000)
    [body] = robot_bodies(message, split=False)
    assert TRUNCATED_MARKER in body["text"]["content"]
    assert len(encode(body)) <= ROBOT_MAX_BYTES
