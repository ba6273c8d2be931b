"""A DingTalk request body as the console shows it: the exact JSON, its size against the limit
DingTalk holds it to, and the chat bubble DingTalk would draw (bridge/chatview/). The Messages
page shows the bodies a message was sent in, the Playground those it would be sent in."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from bridge.chatview import ChatView, app_robot_view, card_view, notice_view, robot_view
from bridge.config.model import Target
from bridge.dingtalk.approbot import MSG_PARAM_MAX_BYTES
from bridge.dingtalk.channels import bodies_for
from bridge.dingtalk.robot import ROBOT_MAX_BYTES
from bridge.dingtalk.sizing import encode
from bridge.model import Message


@dataclass(frozen=True)
class BodyView:
    text: str  # the body's JSON, indented for reading (as kept, when it no longer parses)
    size: int  # the bytes DingTalk counts: the whole body, or an app robot's msgParam
    limit: int  # DingTalk's limit for `size`; 0 where none is documented (work notices)
    view: ChatView | None  # None: no message a chat shows (a body cut in the history)


def body_view(target_type: str, body: Mapping[str, Any]) -> BodyView:
    """One body sent to a target of `target_type`, as DingTalk shows it."""
    text = json.dumps(body, ensure_ascii=False, indent=2)
    size = len(encode(dict(body)))
    if target_type == "app_robot":
        if "cardTemplateId" in body:
            return BodyView(text, size, 0, card_view(body))
        param = body.get("msgParam", "")
        view = app_robot_view(str(body.get("msgKey", "")), param)
        shown = param if isinstance(param, str) else json.dumps(param, ensure_ascii=False)
        return BodyView(text, len(shown.encode()), MSG_PARAM_MAX_BYTES, view)
    if target_type == "work_notice":  # no documented limit we trust (dingtalk/worknotice.py)
        msg = body.get("msg")
        return BodyView(text, size, 0, notice_view(msg if isinstance(msg, Mapping) else {}))
    return BodyView(text, size, ROBOT_MAX_BYTES, robot_view(body))


def stored_views(target_type: str, texts: Iterable[str]) -> list[BodyView]:
    """Bodies as the history keeps them (JSON text; one cut at the history's bound no longer
    parses and is shown as kept)."""
    out = []
    for text in texts:
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, Mapping):
            out.append(body_view(target_type, body))
        else:
            out.append(BodyView(text, len(text.encode()), 0, None))
    return out


def message_views(
    target: Target, message: Message, id_: str, accepted_at: float, tz: tzinfo
) -> list[BodyView]:
    """The bodies `message` would be sent to `target` in now, each as DingTalk shows it."""
    bodies = bodies_for(target, message, [id_], accepted_at, tz)
    return [body_view(target.type, b) for b in bodies]
