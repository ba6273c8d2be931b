"""A DingTalk request body as the console shows it: the exact JSON, its size in bytes, and the
chat bubble DingTalk would draw (bridge/chatview/). The body's shape says which view fits: a
custom robot's `msgtype`, a work notice's `msg`, an app robot's `msgKey` and `msgParam`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from bridge.chatview import ChatView, app_robot_view, notice_view, robot_view
from bridge.config.model import Target
from bridge.dingtalk.channels import bodies_for
from bridge.dingtalk.sizing import encode
from bridge.model import Message


@dataclass(frozen=True)
class BodyView:
    text: str  # the body's JSON, indented for reading
    size: int  # bytes of the body as sent (compact UTF-8 JSON)
    view: ChatView | None  # None: not a message body (a card update, a recall)


def chat_view(body: Mapping[str, Any]) -> ChatView | None:
    """The bubble of one body, by its shape; None for a body that is no chat message."""
    if "msgtype" in body:
        return robot_view(body)
    msg = body.get("msg")
    if isinstance(msg, Mapping):
        return notice_view(msg)
    key, param = body.get("msgKey"), body.get("msgParam")
    if isinstance(key, str) and isinstance(param, str | Mapping):
        return app_robot_view(key, param)
    return None


def body_view(body: Mapping[str, Any]) -> BodyView:
    return BodyView(
        json.dumps(body, ensure_ascii=False, indent=2), len(encode(dict(body))), chat_view(body)
    )


def stored_views(texts: Iterable[str]) -> list[BodyView]:
    """Bodies as the history keeps them (JSON text, maybe cut at its bound)."""
    out = []
    for text in texts:
        try:
            body = json.loads(text)
        except ValueError:
            out.append(BodyView(text, len(text.encode()), None))  # cut: shown as kept
            continue
        if isinstance(body, Mapping):
            view = body_view(body)
            out.append(BodyView(view.text, len(text.encode()), view.view))
        else:
            out.append(BodyView(text, len(text.encode()), None))
    return out


def message_views(
    target: Target, message: Message, id_: str, accepted_at: float, tz: tzinfo
) -> list[BodyView]:
    """The bodies `message` would be sent to `target` in now, each as DingTalk shows it."""
    return [body_view(b) for b in bodies_for(target, message, [id_], accepted_at, tz)]
