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
        problems=tuple(fields.problems),
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


def link_card(title: str, text: str, url: str | None, pic: str | None) -> str:
    """A link message: title, up to a few lines of text (cut with an ellipsis, reference §1.4)
    and the picture on the right; the whole card opens the URL."""
    inner = (
        f'<div class="dt-link-title">{escape(title)}</div>'
        f'<div class="dt-link-row"><div class="dt-link-text">{escape(text)}</div>'
        f"{picture(pic, 'dt-link-pic')}</div>"
    )
    return anchor(url, inner, "dt-link")


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
