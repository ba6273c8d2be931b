"""bridge.chatview: golden HTML for a table of bodies, mentions, link schemes, and generated
bodies that never raise and never produce markup outside the allow-list."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from bridge.chatview import (
    ChatView,
    app_robot_view,
    card_view,
    notice_view,
    robot_view,
    stylesheet,
)
from bridge.chatview.safe import MAX_PROBLEMS, MAX_TEXT_BYTES
from tests.chatview_safety import assert_safe

GOLDEN = Path(__file__).parent / "golden" / "chatview"

# The reference's own samples (/work/shared/reference/dingtalk.md §1.4, §3.1, §6) and the shapes
# the bridge sends (bridge/dingtalk/approbot.py for sampleActionCard6).
WEATHER = (
    "#### 杭州天气 @150XXXXXXXX \n > 9度，西北风1级\n"
    " > ![screenshot](https://img.alicdn.com/tfs/TB1NwmBEL9TBuNjy1zbXXXpepXa-2400-1218.png)\n"
    " > ###### 10点20分发布 [天气](https://www.dingtalk.com) \n"
)
ALERT = (
    "### 🔥 FIRING · DiskFull\n\n**1 firing**\n\n---\n\n🔴 **Disk almost full**\n\n"
    "> / is 95% full\n\n- instance: host-3:9100\n- job: node\n\n1. first\n2. second\n\n"
    "*italic* and `17c4e445`  \nnext line\n\n[Source](http://127.0.0.1:9090/graph?g0.expr=disk)"
)
CASES: dict[str, tuple[Callable[..., ChatView], tuple[Any, ...]]] = {
    "robot-text": (
        robot_view,
        (
            {
                "msgtype": "text",
                "text": {"content": "[告警] CPU>90% @13800000000\n<b>second</b> line"},
                "at": {"atMobiles": ["13800000000"], "isAtAll": False},
            },
        ),
    ),
    "robot-markdown-weather": (
        robot_view,
        (
            {
                "msgtype": "markdown",
                "markdown": {"title": "杭州天气", "text": WEATHER},
                "at": {"atMobiles": ["150XXXXXXXX"], "atUserIds": ["user123"], "isAtAll": False},
            },
        ),
    ),
    "robot-markdown-alert": (
        robot_view,
        ({"msgtype": "markdown", "markdown": {"title": "[FIRING] DiskFull", "text": ALERT}},),
    ),
    "robot-markdown-unsupported": (
        robot_view,
        (
            {
                "msgtype": "markdown",
                "markdown": {
                    "title": "t",
                    "text": "| a | b |\n|---|--:|\n| 1 | 2 |\n\n```\ncode\n```\n\n<i>x</i> "
                    "[js](javascript:alert(1)) ![](data:image/png;base64,AA) @somebody",
                },
                "at": {"isAtAll": True},
            },
        ),
    ),
    "robot-link": (
        robot_view,
        (
            {
                "msgtype": "link",
                "link": {
                    "title": "告警标题",
                    "text": "描述 " * 40,
                    "messageUrl": "https://example.com/a?b=1&c=2",
                    "picUrl": "https://example.com/p.png",
                },
            },
        ),
    ),
    "robot-actioncard-single": (
        robot_view,
        (
            {
                "msgtype": "actionCard",
                "actionCard": {
                    "title": "乔布斯",
                    "text": "![screenshot](https://example.com/a.png)\n### 乔布斯 20 年前",
                    "btnOrientation": "0",
                    "singleTitle": "阅读全文",
                    "singleURL": "https://www.dingtalk.com/",
                },
            },
        ),
    ),
    "robot-actioncard-btns-horizontal": (
        robot_view,
        (
            {
                "msgtype": "actionCard",
                "actionCard": {
                    "title": "t",
                    "text": "**disk** full",
                    "btnOrientation": "1",
                    "btns": [
                        {"title": "确认", "actionURL": "https://example.com/ok"},
                        {
                            "title": "忽略",
                            "actionURL": "dingtalk://dingtalkclient/page/link?url=x&pc_slide=true",
                        },
                    ],
                },
                "at": {"atMobiles": ["13800000000"]},
            },
        ),
    ),
    "robot-actioncard-btns-vertical": (
        robot_view,
        (
            {
                "msgtype": "actionCard",
                "actionCard": {
                    "title": "t",
                    "text": "pick",
                    "btnOrientation": "0",
                    "btns": [
                        {"title": "one", "actionURL": "https://example.com/1"},
                        {"title": "two", "actionURL": "javascript:alert(2)"},
                        {"title": "three", "actionURL": "https://example.com/3"},
                    ],
                },
            },
        ),
    ),
    "robot-feedcard": (
        robot_view,
        (
            {
                "msgtype": "feedCard",
                "feedCard": {
                    "links": [
                        {
                            "title": "t1",
                            "messageURL": "https://example.com/1",
                            "picURL": "https://example.com/1.png",
                        },
                        {
                            "title": "t2",
                            "messageURL": "https://example.com/2",
                            "picURL": "https://example.com/2.png",
                        },
                    ]
                },
            },
        ),
    ),
    "robot-unknown": (robot_view, ({"msgtype": "image", "image": {"picURL": "<script>"}},)),
    "notice-text": (notice_view, ({"msgtype": "text", "text": {"content": "disk full @u1"}},)),
    "notice-markdown": (
        notice_view,
        ({"msgtype": "markdown", "markdown": {"title": "告警", "text": "### CPU\n> 95%"}},),
    ),
    "notice-link": (
        notice_view,
        (
            {
                "msgtype": "link",
                "link": {
                    "messageUrl": "https://example.com",
                    "picUrl": "@lADOpwk3K80C0M0FoA",
                    "title": "t",
                    "text": "x",
                },
            },
        ),
    ),
    "notice-action-card-single": (
        notice_view,
        (
            {
                "msgtype": "action_card",
                "action_card": {
                    "title": "t",
                    "markdown": "# big",
                    "single_title": "open",
                    "single_url": "https://example.com",
                },
            },
        ),
    ),
    "notice-action-card-btns": (
        notice_view,
        (
            {
                "msgtype": "action_card",
                "action_card": {
                    "title": "t",
                    "markdown": "choose",
                    "btn_orientation": "1",
                    "btn_json_list": [
                        {"title": "a", "action_url": "https://example.com/a"},
                        {"title": "b", "action_url": "https://example.com/b"},
                    ],
                },
            },
        ),
    ),
    "notice-oa": (
        notice_view,
        (
            {
                "msgtype": "oa",
                "oa": {
                    "message_url": "https://example.com/oa",
                    "head": {"bgcolor": "FFBBBBBB", "text": "头部标题"},
                    "body": {
                        "title": "正文标题",
                        "form": [
                            {"key": "姓名:", "value": "张三"},
                            {"key": "年龄:", "value": "20"},
                        ],
                        "rich": {"num": "15.6", "unit": "元"},
                        "content": "大段文本",
                        "image": "@lADOADmaWMzazQKA",
                        "author": "李四 ",
                    },
                },
            },
        ),
    ),
    "notice-file": (notice_view, ({"msgtype": "file", "file": {"media_id": "@x"}},)),
    "app-sampleText": (app_robot_view, ("sampleText", '{"content": "hello @u1"}')),
    "app-sampleMarkdown": (
        app_robot_view,
        ("sampleMarkdown", {"title": "hello title", "text": "## hello\n\n- a\n- b"}),
    ),
    "app-sampleLink": (
        app_robot_view,
        (
            "sampleLink",
            {"title": "t", "text": "x", "messageUrl": "https://example.com", "picUrl": ""},
        ),
    ),
    "app-sampleActionCard": (
        app_robot_view,
        (
            "sampleActionCard",
            {"title": "t", "text": "x", "singleTitle": "go", "singleURL": "https://e.com"},
        ),
    ),
    "app-sampleActionCard3": (
        app_robot_view,
        (
            "sampleActionCard3",
            {"title": "t", "text": "x"}
            | {f"actionTitle{n}": f"b{n}" for n in (1, 2, 3)}
            | {f"actionURL{n}": f"https://e.com/{n}" for n in (1, 2, 3)},
        ),
    ),
    "app-sampleActionCard6": (
        app_robot_view,
        (
            "sampleActionCard6",
            {"title": "t", "text": "x", "buttonTitle1": "yes", "buttonUrl1": "https://e.com/y"}
            | {"buttonTitle2": "no", "buttonUrl2": "https://e.com/n"},
        ),
    ),
    "app-unknown-key": (app_robot_view, ("sampleNope", "{}")),
    "app-bad-param": (app_robot_view, ("sampleText", "{not json")),
    "card": (
        card_view,
        (
            {
                "cardTemplateId": "tpl.schema",
                "outTrackId": "t1",
                "cardData": {"cardParamMap": {"title": "DiskFull", "status": "<firing>"}},
            },
        ),
    ),
}


def shown(view: ChatView) -> str:
    head = [
        f"kind: {view.kind}",
        f"title: {view.title}",
        f"mentions: {', '.join(view.mentions)}",
        "problems:",
        *(f"- {p}" for p in view.problems),
    ]
    return "<!--\n" + "\n".join(head).replace("--", "‐‐") + "\n-->\n" + view.html + "\n"


@pytest.mark.parametrize("case", sorted(CASES))
def test_bodies_match_golden_html(case: str) -> None:
    view_of, args = CASES[case]
    view = view_of(*args)
    assert_safe(view.html)
    golden = GOLDEN / f"{case}.html"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(shown(view), "utf-8")
    assert shown(view) == golden.read_text("utf-8"), f"differs from {golden}; UPDATE_GOLDEN=1"


def _markdown(text: str, at: Mapping[str, Any] | None = None) -> ChatView:
    body: dict[str, Any] = {"msgtype": "markdown", "markdown": {"title": "t", "text": text}}
    if at is not None:
        body["at"] = at
    return robot_view(body)


def test_a_listed_mention_in_the_text_is_pinged_and_highlighted() -> None:
    view = _markdown("### disk @13800000000 @ops-lead", {"atMobiles": ["13800000000"]})
    assert view.mentions == ("13800000000",)
    assert '<span class="mention pinged">@13800000000</span>' in view.html
    assert '<span class="mention pinged">@ops-lead' not in view.html and "@ops-lead" in view.html
    assert view.problems == ("@ops-lead is in the text but not in at.atUserIds: shown, not pinged",)


def test_the_longest_listed_name_wins() -> None:
    view = robot_view(
        {
            "msgtype": "text",
            "text": {"content": "@1380 and @13800"},
            "at": {"atMobiles": ["1380", "13800"]},
        }
    )
    assert view.mentions == ("1380", "13800")
    assert '<span class="mention pinged">@13800</span>' in view.html
    assert '<span class="mention pinged">@1380</span> and' in view.html


def test_a_listed_mention_missing_from_markdown_is_not_pinged_and_says_why() -> None:
    view = _markdown("### disk", {"atMobiles": ["13800000000"], "atUserIds": ["u1"]})
    assert view.mentions == ()
    assert "mention" not in view.html
    assert view.problems == (
        "13800000000 is in at.atMobiles but @13800000000 is not in markdown.text: "
        "DingTalk neither highlights nor pings it (reference §1.5)",
        "u1 is in at.atUserIds but @u1 is not in markdown.text: "
        "DingTalk neither highlights nor pings it (reference §1.5)",
    )


def test_at_all_pings_everyone_and_highlights_the_word() -> None:
    view = _markdown("@所有人 look", {"isAtAll": True})
    assert view.mentions == ("all",)
    assert '<span class="mention pinged">@所有人</span>' in view.html


def test_at_is_ignored_outside_text_and_markdown() -> None:
    body = {
        "msgtype": "link",
        "link": {"title": "t", "text": "@13800000000", "messageUrl": "https://e.com"},
        "at": {"atMobiles": ["13800000000"]},
    }
    view = robot_view(body)
    assert view.mentions == () and "mention" not in view.html
    assert view.problems[0].startswith("at is ignored for link")


def test_an_email_address_is_not_a_mention() -> None:
    assert _markdown("mail ops@example.com").problems == ()


@pytest.mark.parametrize(
    ("url", "linked"),
    [
        ("https://example.com/x", True),
        ("http://example.com/x", True),
        ("dingtalk://dingtalkclient/page/link?url=x", True),
        ("HTTPS://EXAMPLE.COM", True),
        ("javascript:alert(1)", False),
        ("JavaScript:alert(1)", False),
        ("java\tscript:alert(1)", False),
        ("data:text/html;base64,PHNjcmlwdD4=", False),
        ("vbscript:x", False),
        ("/relative/path", False),
        ("file:///etc/passwd", False),
    ],
)
def test_only_http_https_and_dingtalk_links_become_anchors(url: str, linked: bool) -> None:
    markdown = _markdown(f"[go]({url.replace(' ', '%20')})")
    card = robot_view(
        {
            "msgtype": "actionCard",
            "actionCard": {"title": "t", "text": "x", "singleTitle": "go", "singleURL": url},
        }
    )
    for view in (markdown, card):
        assert_safe(view.html)
        assert ("<a " in view.html) is linked, view.html
        assert bool(view.problems) is not linked, view.problems


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://e.com/a.png", True),
        ("http://e.com/a.png", True),
        ("dingtalk://x", False),
        ("data:image/png;base64,AA", False),
        ("javascript:x", False),
        ("a.png", False),
    ],
)
def test_only_http_images_are_shown(url: str, shown: bool) -> None:
    view = _markdown(f"![pic]({url})")
    assert ("<img " in view.html) is shown
    if shown:
        assert 'loading="lazy"' in view.html and 'referrerpolicy="no-referrer"' in view.html
    else:
        assert view.problems


def test_raw_html_is_shown_escaped() -> None:
    view = _markdown('<script>alert(1)</script><img src=x onerror="alert(1)">')
    assert "&lt;script&gt;" in view.html and "<script" not in view.html
    assert any("HTML tags" in p for p in view.problems)


def test_a_long_text_is_cut_with_a_problem_line() -> None:
    view = robot_view({"msgtype": "text", "text": {"content": "é" * MAX_TEXT_BYTES}})
    assert len(view.html.encode()) < MAX_TEXT_BYTES + 1000
    assert view.problems == (
        f"text.content is {2 * MAX_TEXT_BYTES} bytes: shown cut at {MAX_TEXT_BYTES} "
        "(DingTalk refuses a body over 20000 bytes)",
    )


def test_a_pathological_markdown_text_is_rendered_quickly_enough_to_finish() -> None:
    # Deep nesting is markdown-it's maxNesting's to bound; these must simply finish.
    for text in (">" * 60000, "*" * 60000, "[" * 30000 + "]" * 30000, "- " * 30000):
        assert_safe(_markdown(text).html)


def test_odd_inputs_become_an_unknown_view() -> None:
    for odd in ({}, {"msgtype": None}, {"msgtype": ["text"]}, {"msgtype": "text", "text": 5}):
        view = robot_view(odd)
        assert view.problems, odd
    assert robot_view({}).kind == "unknown"
    assert notice_view({"msgtype": "x"}).kind == "unknown"
    assert app_robot_view("sampleText", "[1]").kind == "unknown"
    lone = robot_view({"msgtype": "text", "text": {"content": "\ud800 x"}})
    lone.html.encode("utf-8")  # lone surrogates do not reach the page


def test_stylesheet_fetches_nothing() -> None:
    css = stylesheet()
    assert "url(" not in css and "@import" not in css and "http" not in css
    assert ".mention.pinged" in css and "@media" in css


def test_sample_bodies_are_json() -> None:
    # The golden table's bodies are what DingTalk takes: JSON objects (no Python-only values).
    for _, args in CASES.values():
        json.dumps(args)


@pytest.mark.parametrize(
    "unsafe",
    [
        "<script>x</script>",
        '<img src="https://e.com/a.png" onerror="x">',
        '<a href="javascript:x" rel="noopener noreferrer" target="_blank">x</a>',
        '<a href="https://e.com">no rel</a>',
        '<img src="data:image/png;base64,AA">',
        "<iframe></iframe>",
        '<div style="background:url(https://e.com)"></div>',
    ],
)
def test_the_safety_check_refuses_unsafe_markup(unsafe: str) -> None:
    with pytest.raises(AssertionError):
        assert_safe(unsafe)


def test_problem_lines_are_bounded() -> None:
    text = " ".join(f"@user{n}" for n in range(MAX_PROBLEMS + 30))
    view = _markdown(text)
    assert len(view.problems) == MAX_PROBLEMS + 1
    assert view.problems[-1] == "… and 30 more problem(s) like these"
