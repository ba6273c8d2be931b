"""The chat view of one message, and the parts every kind of bubble is built from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.chatview import markdown
from bridge.chatview.mentions import NO_AT, At, MentionMarker
from bridge.chatview.safe import Fields, escape, json_text

TITLE_CHARS = 80  # a chat list shows one short line


@dataclass(frozen=True)
class ChatView:
    html: str  # safe HTML fragment (every value escaped / sanitized), one chat bubble
    kind: str  # "text" | "markdown" | "link" | "actionCard" | "feedCard" | "sampleMarkdown" | …
    title: str  # what DingTalk shows in the chat list / notification ("" if none)
    mentions: tuple[str, ...]  # who is pinged: mobiles / userids, "all" for isAtAll
    problems: tuple[str, ...]  # what DingTalk would not show as written


@dataclass(frozen=True)
class Button:
    title: str
    url: str


def first_line(text: str) -> str:
    line = text.strip().split("\n", 1)[0]
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"


def bubble(kind: str, inner: str, sender: str) -> str:
    """One message as a chat shows it: the avatar, the sender's name, the bubble."""
    return (
        f'<div class="dt-msg dt-kind-{escape(kind)}">'
        '<div class="dt-avatar" aria-hidden="true"></div>'
        f'<div class="dt-main"><div class="dt-name">{escape(sender)}</div>'
        f'<div class="dt-bubble">{inner}</div></div></div>'
    )


def finish(
    kind: str, inner: str, title: str, fields: Fields, sender: str, at: At = NO_AT
) -> ChatView:
    return ChatView(
        html=bubble(kind, inner, sender),
        kind=kind,
        title=title,
        mentions=at.mentions,
        problems=fields.listed(),
    )


def plain_text(text: str, marker: MentionMarker) -> str:
    """A text message's body: newlines kept (CSS pre-wrap), mentions marked."""
    return f'<div class="dt-text">{marker(text)}</div>'


def markdown_text(text: str, fields: Fields, marker: MentionMarker, where: str) -> str:
    return f'<div class="dt-md">{markdown.render(text, fields, marker, where)}</div>'


def anchor(url: str | None, inner: str, css: str) -> str:
    """`inner` as a link to `url`, or as a plain block when `url` is not one DingTalk opens."""
    if url is None:
        return f'<div class="{css}">{inner}</div>'
    return (
        f'<a class="{css}" href="{escape(url)}" target="_blank" rel="noopener noreferrer">'
        f"{inner}</a>"
    )


def picture(url: str | None, css: str) -> str:
    if url is None:
        return ""
    return (
        f'<img class="{css}" src="{escape(url)}" alt="" loading="lazy" '
        'referrerpolicy="no-referrer">'
    )


def link_message(
    content: Mapping[str, Any], fields: Fields, where: str, *, from_app: bool
) -> tuple[str, str]:
    """A link message (the robot's `link`, a notice's `msg.link`, the app robot's sampleLink,
    all `{title, text, messageUrl, picUrl}`) as (html, title): the title, up to a few lines of
    text (cut with an ellipsis, reference §1.4) and the picture on the right; the whole card
    opens the URL. `from_app`: a notice or an app robot, whose picUrl is required and may be a
    media id."""
    title = fields.text(content, "title", f"{where}.title")
    text = fields.text(content, "text", f"{where}.text")
    url = fields.link(fields.text(content, "messageUrl", f"{where}.messageUrl"), "messageUrl")
    pic_url = fields.text(content, "picUrl", f"{where}.picUrl", required=from_app)
    pic = fields.image(pic_url, "picUrl", media_ids=from_app)
    inner = (
        f'<div class="dt-link-title">{escape(title)}</div>'
        f'<div class="dt-link-row"><div class="dt-link-text">{escape(text)}</div>'
        f"{picture(pic, 'dt-link-pic')}</div>"
    )
    return anchor(url, inner, "dt-link"), title


def button(obj: Mapping[str, Any], fields: Fields, where: str, keys: tuple[str, str]) -> Button:
    """The button whose title and URL are `obj[keys[0]]` and `obj[keys[1]]`."""
    title_key, url_key = keys
    return Button(
        fields.text(obj, title_key, f"{where}.{title_key}"),
        fields.text(obj, url_key, f"{where}.{url_key}"),
    )


def read_buttons(
    card: Mapping[str, Any],
    fields: Fields,
    where: str,
    single: tuple[str, str],
    listed: str,
    item: tuple[str, str],
) -> list[Button]:
    """An action card's buttons: the list `card[listed]` of `item` keys, or else the single
    button of `single` keys (the robot's and the work notice's cards differ only in names)."""
    raw = card.get(listed)
    if raw is None:
        if all(card.get(key) is None for key in single):
            return []
        return [button(card, fields, where, single)]
    if not isinstance(raw, list):
        fields.problem(f"{where}.{listed} is not a list: DingTalk refuses the message")
        return []
    return [
        button(entry if isinstance(entry, Mapping) else {}, fields, f"{where}.{listed}[{i}]", item)
        for i, entry in enumerate(raw)
    ]


def action_card(body_html: str, buttons: Sequence[Button], horizontal: bool, fields: Fields) -> str:
    """An action card: its markdown, then one button or several (side by side or stacked)."""
    shown: list[str] = []
    for index, button in enumerate(buttons, start=1):
        url = fields.link(button.url, f"button {index} URL")
        shown.append(anchor(url, escape(button.title or "…"), "dt-btn"))
    if not buttons:
        fields.problem("the action card has no button: DingTalk refuses it")
    way = "dt-btns-h" if horizontal else "dt-btns-v"
    return f'{body_html}<div class="dt-btns {way}">{"".join(shown)}</div>'


def unknown(
    what: Mapping[str, Any] | Any, problem: str, fields: Fields, sender: str, kind: str = "unknown"
) -> ChatView:
    """A body we cannot draw: its JSON, escaped, and why."""
    fields.problem(problem)
    shown = fields.bounded(json_text(what), "the body")
    inner = f'<pre class="dt-json">{escape(shown)}</pre>'
    return finish(kind, inner, "", fields, sender)


def msgtype_of(
    body: Mapping[str, Any] | Any, types: tuple[str, ...], what: str, fields: Fields, sender: str
) -> str | ChatView:
    """The msgtype of `body` if it is one of `types` (what: whose types, for the problem line),
    else the unknown view that says why."""
    if not isinstance(body, Mapping):
        return unknown(body, "the body is not a JSON object", fields, sender)
    msgtype = body.get("msgtype")
    if isinstance(msgtype, str) and msgtype in types:
        return msgtype
    return unknown(
        body,
        f"msgtype {str(msgtype)[:100]!r} is not one {what} sends ({', '.join(types)})",
        fields,
        sender,
    )
