"""Message -> the custom group robot's JSON body (reference/dingtalk.md §1.4-§1.6). Pure.

Three things existing bridges get wrong, done here:
- keywords: a robot with security keywords rejects (310000) any message without one, so the bridge
  adds the first keyword when the rendered title or text lacks all of them;
- mentions: DingTalk only pings a mention whose "@mobile"/"@userid" appears in the text, so the
  bridge writes them into the text as well as into `at`;
- size: the body never exceeds 20,000 bytes of UTF-8 JSON; the text is cut with a visible marker.
"""

from __future__ import annotations

import re
from typing import Any

from bridge.dingtalk.sizing import encode, fit_text
from bridge.model import Mention, Message

ROBOT_MAX_BYTES = 20_000
_HEADING = re.compile(r"^(#{1,6} )")


def _with_keyword(text: str, keywords: tuple[str, ...], markdown: bool) -> str:
    if not keywords or any(k in text for k in keywords):
        return text
    if markdown and _HEADING.match(text):  # keep the heading a heading: "### 告警 FIRING …"
        return _HEADING.sub(lambda m: m.group(1) + keywords[0] + " ", text, count=1)
    return f"{keywords[0]} {text}"


def mention_suffix(text: str, mention: Mention) -> str:
    """ "@13800000000 @user1" for the mentions whose @-text is not in `text` yet."""
    names = [*mention.mobiles, *mention.userids]
    return " ".join(f"@{n}" for n in names if f"@{n}" not in text)


def _at(mention: Mention) -> dict[str, Any]:
    return {
        "atMobiles": list(mention.mobiles),
        "atUserIds": list(mention.userids),
        "isAtAll": mention.all,
    }


def robot_body(
    message: Message, keywords: tuple[str, ...] = (), limit: int = ROBOT_MAX_BYTES
) -> dict[str, Any]:
    """The JSON object to POST to the robot webhook; its encoding is at most `limit` bytes."""
    kind = message.msgtype
    markdown = kind != "text"
    title = _with_keyword(message.title, keywords, markdown=False)
    text = _with_keyword(message.text, keywords, markdown)
    suffix = mention_suffix(text, message.mention) if kind in ("text", "markdown") else ""
    joiner = "\n\n" if markdown else "\n"

    def build(body_text: str) -> dict[str, Any]:
        full = f"{body_text}{joiner}{suffix}" if suffix else body_text
        if kind == "text":
            return {"msgtype": "text", "text": {"content": full}, "at": _at(message.mention)}
        if kind == "markdown":
            return {
                "msgtype": "markdown",
                "markdown": {"title": title, "text": full},
                "at": _at(message.mention),
            }
        if kind == "link":
            return {
                "msgtype": "link",
                "link": {
                    "title": title,
                    "text": full,
                    "messageUrl": message.url,
                    "picUrl": message.pic_url,
                },
            }
        if kind == "actionCard":
            card: dict[str, Any] = {
                "title": title,
                "text": full,
                "btnOrientation": message.btn_orientation,
            }
            if message.buttons:
                card["btns"] = [{"title": b.title, "actionURL": b.url} for b in message.buttons]
            else:
                card["singleTitle"] = "查看详情"
                card["singleURL"] = message.url
            return {"msgtype": "actionCard", "actionCard": card}
        raise ValueError(f"no text body for msgtype {kind}")

    if kind == "feedCard":
        return _feed_card(message, keywords, limit)
    body, _ = fit_text(build, text, limit)
    return body


def _feed_card(message: Message, keywords: tuple[str, ...], limit: int) -> dict[str, Any]:
    links = [
        {"title": link.title, "messageURL": link.url, "picURL": link.pic_url}
        for link in message.links
    ]
    if keywords and links and not any(k in link["title"] for link in links for k in keywords):
        links[0]["title"] = _with_keyword(links[0]["title"], keywords, markdown=False)
    body = {"msgtype": "feedCard", "feedCard": {"links": links}}
    while len(links) > 1 and len(encode(body)) > limit:
        links.pop()  # a feed card that is too long loses its last entries, never all of them
    return body
