"""bridge.chatview on generated bodies: never an exception, never markup outside the allow-list
(tests/chatview_safety.py), whatever JSON-like value or hostile string comes in."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.chatview import app_robot_view, card_view, notice_view, robot_view
from tests.chatview_safety import assert_safe

GENERATED = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Strings that try every construct the renderer handles, and the ones it must refuse.
PIECES = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "[x](javascript:alert(1))",
    "![i](data:image/png;base64,AA)",
    '[ok](https://e.com/"q)',
    "![p](https://e.com/p.png)",
    "# ",
    "> ",
    "- ",
    "1. ",
    "**",
    "*",
    "`",
    "```\n",
    "| a | b |\n",
    "|---|---|\n",
    "\n",
    "\n\n",
    "  \n",
    "@13800000000",
    "@u1",
    "@all",
    "@所有人",
    "&amp;",
    "&#x3c;",
    "<a href='javascript:x'>",
    "' onmouseover='x",
    "dingtalk://x",
    "\ud800",
    "\x00",
    "---\n",
    "<",
    ">",
    "&",
    '"',
    "'",
    "=",
    "(",
    ")",
    "[",
    "]",
    "\\",
]
hostile = st.lists(st.sampled_from(PIECES) | st.text(max_size=8), max_size=25).map("".join)
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | hostile,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile, inner, max_size=4),
    max_leaves=20,
)
url = st.sampled_from(["https://e.com/a", "javascript:alert(1)", "dingtalk://x", "data:x", ""])
value = hostile | url | json_like
ROBOT_KEYS = ["content", "title", "text", "messageUrl", "picUrl", "singleTitle", "singleURL"]
ROBOT_KEYS += ["btnOrientation", "btns", "links", "actionURL", "messageURL", "picURL"]
NOTICE_KEYS = ["content", "title", "text", "markdown", "messageUrl", "picUrl", "single_title"]
NOTICE_KEYS += ["single_url", "btn_json_list", "btn_orientation", "head", "body", "message_url"]


def shaped(types: list[str], keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies with the right skeleton and hostile leaves, so the deep paths are reached."""
    leaf = st.dictionaries(st.sampled_from([*keys, "bgcolor", "form", "rich", "image"]), value)
    content = st.dictionaries(
        st.sampled_from(keys), value | st.lists(leaf, max_size=3) | leaf, max_size=8
    )
    at = st.fixed_dictionaries(
        {},
        optional={
            "atMobiles": st.lists(hostile, max_size=3) | value,
            "atUserIds": st.lists(hostile, max_size=3),
            "isAtAll": st.booleans() | value,
        },
    )
    return st.sampled_from(types).flatmap(
        lambda t: st.fixed_dictionaries(
            {"msgtype": st.just(t), t: content}, optional={"at": at | value}
        )
    )


@GENERATED
@given(shaped(["text", "markdown", "link", "actionCard", "feedCard"], ROBOT_KEYS) | json_like)
def test_any_robot_body_is_drawn_safely(body: Any) -> None:
    assert_safe(robot_view(body if isinstance(body, dict) else {"msgtype": body}).html)


@GENERATED
@given(shaped(["text", "markdown", "link", "action_card", "oa", "file"], NOTICE_KEYS) | json_like)
def test_any_work_notice_is_drawn_safely(msg: Any) -> None:
    assert_safe(notice_view(msg if isinstance(msg, dict) else {"msgtype": msg}).html)


KEYS = ["sampleText", "sampleMarkdown", "sampleLink", "sampleImageMsg", "sampleX"]
KEYS += [f"sampleActionCard{n}" for n in ("", 2, 3, 4, 5, 6, 7)]
PARAM_KEYS = ["content", "title", "text", "messageUrl", "picUrl", "singleTitle", "singleURL"]
PARAM_KEYS += [f"{p}{n}" for n in range(1, 7) for p in ("actionTitle", "actionURL")]
PARAM_KEYS += ["buttonTitle1", "buttonUrl1", "buttonTitle2", "buttonUrl2"]


@GENERATED
@given(
    st.sampled_from(KEYS) | hostile,
    st.dictionaries(st.sampled_from(PARAM_KEYS), value) | hostile | json_like,
)
def test_any_app_robot_message_is_drawn_safely(key: str, param: Any) -> None:
    assert_safe(app_robot_view(key, param).html)


@GENERATED
@given(json_like, st.dictionaries(hostile, value, max_size=5))
def test_any_card_is_drawn_safely(template: Any, params: dict[str, Any]) -> None:
    body = {"cardTemplateId": template, "cardData": {"cardParamMap": params}}
    assert_safe(card_view(body).html)
