"""What DingTalk does with a well-formed message: keyword inspection, @-mention highlighting,
and the one-line summary the simulator shows to humans.

Every function here assumes the body already passed `shapes.check_*`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def inspected_texts(body: Mapping[str, Any]) -> list[str]:
    """The robot-message strings the keyword check looks at.

    The reference (§1.2) only says "text content, markdown title/text, link title, and so on";
    we inspect every title-like and body-like field, which is the most generous reading, so a
    message rejected here would certainly be rejected by the real service too.
    """
    msgtype = body["msgtype"]
    content = body[msgtype]
    if msgtype == "text":
        return [content["content"]]
    if msgtype == "feedCard":
        return [link["title"] for link in content["links"]]
    # markdown, link and actionCard all carry a title and a text.
    return [content["title"], content["text"]]


@dataclass(frozen=True)
class Mentions:
    mobiles: tuple[str, ...] = ()
    userids: tuple[str, ...] = ()
    highlighted_mobiles: tuple[str, ...] = ()
    highlighted_userids: tuple[str, ...] = ()
    all: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "mobiles": list(self.mobiles),
            "userids": list(self.userids),
            "highlighted_mobiles": list(self.highlighted_mobiles),
            "highlighted_userids": list(self.highlighted_userids),
            "all": self.all,
        }


def robot_mentions(body: Mapping[str, Any]) -> Mentions:
    """Who the message mentions and which mentions DingTalk would actually highlight.

    DingTalk only highlights (and notifies) a mention whose literal "@<mobile>" / "@<userid>" is
    in text.content or markdown.text (§1.5); `at` is ignored for the other msgtypes.
    """
    msgtype = body["msgtype"]
    at = body.get("at")
    if msgtype not in ("text", "markdown") or not isinstance(at, dict):
        return Mentions()
    shown = body["text"]["content"] if msgtype == "text" else body["markdown"]["text"]
    mobiles = tuple(at.get("atMobiles") or ())
    userids = tuple(at.get("atUserIds") or ())
    return Mentions(
        mobiles=mobiles,
        userids=userids,
        highlighted_mobiles=tuple(m for m in mobiles if f"@{m}" in shown),
        highlighted_userids=tuple(u for u in userids if f"@{u}" in shown),
        all=at.get("isAtAll") is True,
    )


def robot_summary(body: Mapping[str, Any]) -> tuple[str, str]:
    """(title, text) of a robot message, for the HTML page and the stderr line."""
    msgtype = body["msgtype"]
    content = body[msgtype]
    if msgtype == "text":
        text: str = content["content"]
        return _first_line(text), text
    if msgtype == "feedCard":
        titles = [link["title"] for link in content["links"]]
        return titles[0], "\n".join(titles)
    return content["title"], content["text"]


def work_notice_summary(msg: Mapping[str, Any]) -> tuple[str, str]:
    """(title, text) of a work-notification `msg`."""
    msgtype = msg["msgtype"]
    content = msg[msgtype]
    if msgtype == "text":
        return _first_line(content["content"]), content["content"]
    if msgtype in ("markdown", "link"):
        return content["title"], content["text"]
    if msgtype == "action_card":
        return content["title"], content["markdown"]
    if msgtype == "oa":
        head_text = content["head"].get("text")
        body = content["body"]
        title = body.get("title") or head_text or "(oa)"
        return str(title), str(body.get("content") or "")
    return f"({msgtype})", str(content.get("media_id", ""))


def _first_line(text: str, limit: int = 80) -> str:
    line = text.strip().split("\n", 1)[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"
