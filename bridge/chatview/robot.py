"""A custom robot's webhook body (reference §1.4) as the chat shows it.

The five documented msgtypes: text, markdown, link, actionCard (one button or `btns`, stacked or
side by side by `btnOrientation`), feedCard. `at` pings only in text and markdown (mentions.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.chatview.mentions import NO_AT, MentionMarker, read_at
from bridge.chatview.safe import Fields, escape
from bridge.chatview.view import (
    ChatView,
    action_card,
    anchor,
    finish,
    first_line,
    link_message,
    markdown_text,
    msgtype_of,
    picture,
    plain_text,
    read_buttons,
)

SENDER = "Robot"
MSGTYPES = ("text", "markdown", "link", "actionCard", "feedCard")


def robot_view(body: Mapping[str, Any]) -> ChatView:
    """The chat bubble of a custom robot webhook body. Never raises."""
    fields = Fields([])
    msgtype = msgtype_of(body, MSGTYPES, "DingTalk's custom robot", fields, SENDER)
    if isinstance(msgtype, ChatView):
        return msgtype
    content = fields.mapping(body, msgtype, msgtype)
    if msgtype == "text":
        text = fields.text(content, "content", "text.content")
        at = read_at(body, text, msgtype, fields)
        inner = plain_text(text, MentionMarker(at, fields))
        return finish(msgtype, inner, first_line(text), fields, SENDER, at)
    if msgtype == "markdown":
        title = fields.text(content, "title", "markdown.title")
        text = fields.text(content, "text", "markdown.text")
        at = read_at(body, text, msgtype, fields)
        inner = markdown_text(text, fields, MentionMarker(at, fields), "markdown.text")
        return finish(msgtype, inner, title, fields, SENDER, at)
    read_at(body, "", msgtype, fields)  # only to say that `at` is ignored here
    marker = MentionMarker(NO_AT, fields, pings=False)
    if msgtype == "link":
        inner, title = link_message(content, fields, "link", from_app=False)
        return finish(msgtype, inner, title, fields, SENDER)
    if msgtype == "actionCard":
        title = fields.text(content, "title", "actionCard.title")
        text = fields.text(content, "text", "actionCard.text")
        body_html = markdown_text(text, fields, marker, "actionCard.text")
        buttons = read_buttons(
            content,
            fields,
            "actionCard",
            ("singleTitle", "singleURL"),
            "btns",
            ("title", "actionURL"),
        )
        horizontal = str(content.get("btnOrientation", "0")) == "1"
        inner = action_card(body_html, buttons, horizontal, fields)
        return finish(msgtype, inner, title, fields, SENDER)
    return _feed_card(content, fields)


def _feed_card(content: Mapping[str, Any], fields: Fields) -> ChatView:
    """A feed card: the first link large with its picture, the others as rows."""
    raw = content.get("links")
    links = raw if isinstance(raw, list) else []
    if not links:
        fields.problem("feedCard.links is missing or empty: DingTalk refuses the message")
    rows: list[str] = []
    titles: list[str] = []
    for index, item in enumerate(links):
        link = item if isinstance(item, Mapping) else {}
        where = f"feedCard.links[{index}]"
        title = fields.text(link, "title", f"{where}.title")
        titles.append(title)
        url = fields.link(fields.text(link, "messageURL", f"{where}.messageURL"), where)
        pic = fields.image(fields.text(link, "picURL", f"{where}.picURL", required=False), where)
        css = "dt-feed-first" if index == 0 else "dt-feed-row"
        inner = f'<span class="dt-feed-title">{escape(title)}</span>{picture(pic, "dt-feed-pic")}'
        rows.append(anchor(url, inner, css))
    title = titles[0] if titles else ""
    return finish("feedCard", f'<div class="dt-feed">{"".join(rows)}</div>', title, fields, SENDER)
