"""Work notices (reference §3.1) and the v1.0 app robot's messages (§6) as the chat shows them.

Neither can @ anyone: a work notice goes to the listed users' "work notice" conversation, an app
robot's templates carry no `at`. So their text is shown without pinged mentions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from bridge.chatview.mentions import NO_AT, MentionMarker
from bridge.chatview.safe import MAX_TEXT_BYTES, Fields, escape
from bridge.chatview.view import (
    ChatView,
    action_card,
    anchor,
    button,
    finish,
    first_line,
    link_message,
    markdown_text,
    msgtype_of,
    picture,
    plain_text,
    read_buttons,
    unknown,
)

NOTICE_SENDER = "Work notice"
APP_SENDER = "App robot"
NOTICE_TYPES = ("text", "markdown", "link", "action_card", "oa", "image", "voice", "file")
MEDIA_KEYS = ("sampleImageMsg", "sampleAudio", "sampleVideo", "sampleFile")
_COLOR = re.compile(r"^(?:[0-9A-Fa-f]{2})?([0-9A-Fa-f]{6})$")  # OA head bgcolor: [AA]RRGGBB


def notice_view(msg: Mapping[str, Any]) -> ChatView:
    """The bubble of a work notice's `msg`. Never raises."""
    fields = Fields([])
    msgtype = msgtype_of(msg, NOTICE_TYPES, "a work notice", fields, NOTICE_SENDER)
    if isinstance(msgtype, ChatView):
        return msgtype
    content = fields.mapping(msg, msgtype, f"msg.{msgtype}")
    marker = MentionMarker(NO_AT, fields, pings=False)
    where = f"msg.{msgtype}"
    if msgtype == "text":
        text = fields.text(content, "content", f"{where}.content")
        return finish(msgtype, plain_text(text, marker), first_line(text), fields, NOTICE_SENDER)
    if msgtype == "markdown":
        title = fields.text(content, "title", f"{where}.title")
        text = fields.text(content, "text", f"{where}.text")
        inner = markdown_text(text, fields, marker, f"{where}.text")
        return finish(msgtype, inner, title, fields, NOTICE_SENDER)
    if msgtype == "link":
        inner, title = link_message(content, fields, where, from_app=True)
        return finish(msgtype, inner, title, fields, NOTICE_SENDER)
    if msgtype == "action_card":
        return _notice_card(content, fields, marker)
    if msgtype == "oa":
        return _oa(content, fields)
    return _media(msgtype, fields, NOTICE_SENDER)


def _notice_card(card: Mapping[str, Any], fields: Fields, marker: MentionMarker) -> ChatView:
    where = "msg.action_card"
    title = fields.text(card, "title", f"{where}.title")
    text = fields.text(card, "markdown", f"{where}.markdown")
    body_html = markdown_text(text, fields, marker, f"{where}.markdown")
    buttons = read_buttons(
        card,
        fields,
        where,
        ("single_title", "single_url"),
        "btn_json_list",
        ("title", "action_url"),
    )
    horizontal = str(card.get("btn_orientation", "0")) == "1"
    inner = action_card(body_html, buttons, horizontal, fields)
    return finish("action_card", inner, title, fields, NOTICE_SENDER)


def _oa(oa: Mapping[str, Any], fields: Fields) -> ChatView:
    """An OA message: a coloured head, then title, form lines, a big number, content, author."""
    head = fields.mapping(oa, "head", "msg.oa.head")
    body = fields.mapping(oa, "body", "msg.oa.body")
    head_text = fields.text(head, "text", "msg.oa.head.text", required=False)
    color = _COLOR.match(str(head.get("bgcolor", "")))
    style = f' style="background:#{color.group(1).lower()}"' if color else ""
    parts = [f'<div class="dt-oa-head"{style}>{escape(head_text)}</div>']
    title = fields.text(body, "title", "msg.oa.body.title", required=False)
    if title:
        parts.append(f'<div class="dt-oa-title">{escape(title)}</div>')
    form = body.get("form")
    for index, item in enumerate(form if isinstance(form, list) else []):
        line = item if isinstance(item, Mapping) else {}
        key = fields.text(line, "key", f"msg.oa.body.form[{index}].key", required=False)
        value = fields.text(line, "value", f"msg.oa.body.form[{index}].value", required=False)
        parts.append(f'<div class="dt-oa-form"><span>{escape(key)}</span> {escape(value)}</div>')
    rich = body.get("rich")
    if isinstance(rich, Mapping):
        num = fields.text(rich, "num", "msg.oa.body.rich.num", required=False)
        unit = fields.text(rich, "unit", "msg.oa.body.rich.unit", required=False)
        parts.append(f'<div class="dt-oa-rich">{escape(num)}<span>{escape(unit)}</span></div>')
    content = fields.text(body, "content", "msg.oa.body.content", required=False)
    if content:
        parts.append(f'<div class="dt-oa-content">{escape(content)}</div>')
    image = fields.text(body, "image", "msg.oa.body.image", required=False)
    if image.startswith("@"):
        parts.append('<div class="dt-media">[image]</div>')  # a media_id: DingTalk's to fetch
    else:
        parts.append(picture(fields.image(image, "msg.oa.body.image"), "dt-oa-pic"))
    author = fields.text(body, "author", "msg.oa.body.author", required=False)
    if author:
        parts.append(f'<div class="dt-oa-author">{escape(author)}</div>')
    url = fields.text(oa, "message_url", "msg.oa.message_url", required=False)
    inner = anchor(fields.link(url, "msg.oa.message_url"), "".join(parts), "dt-oa")
    return finish("oa", inner, title or head_text, fields, NOTICE_SENDER)


def _media(kind: str, fields: Fields, sender: str) -> ChatView:
    """Images, voice, files: DingTalk's media, which we never fetch: a placeholder."""
    inner = f'<div class="dt-media">[{escape(kind)}]</div>'
    return finish(kind, inner, f"[{kind}]", fields, sender)


def app_robot_view(msg_key: str, msg_param: Mapping[str, Any] | str) -> ChatView:
    """The bubble of a v1.0 app robot message (`msgParam` as sent: a JSON string, or parsed)."""
    fields = Fields([])
    key = msg_key if isinstance(msg_key, str) else repr(msg_key)
    param: Any = msg_param
    if isinstance(msg_param, str):
        if len(msg_param) > MAX_TEXT_BYTES:
            return unknown(msg_param, "msgParam is too long to show", fields, APP_SENDER)
        try:
            param = json.loads(msg_param)
        except (ValueError, RecursionError):
            return unknown(
                msg_param, "msgParam is not JSON: DingTalk refuses it", fields, APP_SENDER
            )
    if not isinstance(param, Mapping):
        return unknown(
            param, "msgParam is not a JSON object: DingTalk refuses it", fields, APP_SENDER
        )
    marker = MentionMarker(NO_AT, fields, pings=False)
    if key == "sampleText":
        text = fields.text(param, "content", "msgParam.content")
        return finish(key, plain_text(text, marker), first_line(text), fields, APP_SENDER)
    if key == "sampleMarkdown":
        title = fields.text(param, "title", "msgParam.title")
        text = fields.text(param, "text", "msgParam.text")
        inner = markdown_text(text, fields, marker, "msgParam.text")
        return finish(key, inner, title, fields, APP_SENDER)
    if key == "sampleLink":
        inner, title = link_message(param, fields, "msgParam", from_app=True)
        return finish(key, inner, title, fields, APP_SENDER)
    if key.startswith("sampleActionCard"):
        return _app_card(key, param, fields, marker)
    if key in MEDIA_KEYS:
        return _media(key, fields, APP_SENDER)
    return unknown(
        {"msgKey": key, "msgParam": param},
        f"msgKey {key[:100]!r} is not one DingTalk's app robot sends",
        fields,
        APP_SENDER,
    )


def _app_card(
    key: str, param: Mapping[str, Any], fields: Fields, marker: MentionMarker
) -> ChatView:
    """sampleActionCard (one button), 2..5 (stacked buttons), 6 (two side by side)."""
    count = key.removeprefix("sampleActionCard")
    if count not in ("", "2", "3", "4", "5", "6"):
        return unknown(
            {"msgKey": key, "msgParam": param},
            f"msgKey {key[:100]!r} is not one DingTalk's app robot sends",
            fields,
            APP_SENDER,
        )
    title = fields.text(param, "title", "msgParam.title")
    text = fields.text(param, "text", "msgParam.text")
    body_html = markdown_text(text, fields, marker, "msgParam.text")
    if count == "":
        buttons = [button(param, fields, "msgParam", ("singleTitle", "singleURL"))]
    elif count == "6":  # the bridge and the simulator name them buttonTitleN / buttonUrlN
        buttons = [
            button(param, fields, "msgParam", (f"buttonTitle{n}", f"buttonUrl{n}"))
            if f"buttonTitle{n}" in param
            else button(param, fields, "msgParam", (f"actionTitle{n}", f"actionURL{n}"))
            for n in (1, 2)
        ]
    else:
        buttons = [
            button(param, fields, "msgParam", (f"actionTitle{n}", f"actionURL{n}"))
            for n in range(1, int(count) + 1)
        ]
    inner = action_card(body_html, buttons, count == "6", fields)
    return finish(key, inner, title, fields, APP_SENDER)


def card_view(body: Mapping[str, Any]) -> ChatView:
    """An interactive card (createAndDeliver or an update): its template is DingTalk's to draw,
    so a generic card with its template id and variables (cardData.cardParamMap)."""
    fields = Fields([])
    if not isinstance(body, Mapping):
        return unknown(body, "the card is not a JSON object", fields, APP_SENDER)
    template = fields.text(body, "cardTemplateId", "cardTemplateId", required=False)
    data = body.get("cardData")
    params = data.get("cardParamMap") if isinstance(data, Mapping) else None
    rows: list[str] = []
    for name, value in params.items() if isinstance(params, Mapping) else ():
        shown = value if isinstance(value, str) else json.dumps(value, default=repr)
        rows.append(
            f"<tr><th>{escape(fields.bounded(str(name), 'a card variable'))}</th>"
            f"<td>{escape(fields.bounded(shown, f'cardParamMap.{str(name)[:50]}'))}</td></tr>"
        )
    if not isinstance(params, Mapping):
        fields.problem("cardData.cardParamMap is missing: the card shows its template's defaults")
    head = escape(template) if template else "(an update of a card)"
    inner = (
        f'<div class="dt-card"><div class="dt-card-head">card {head}</div>'
        f'<table class="dt-card-data">{"".join(rows)}</table></div>'
    )
    title = str(params.get("title", "")) if isinstance(params, Mapping) else ""
    return finish("card", inner, title, fields, APP_SENDER)
