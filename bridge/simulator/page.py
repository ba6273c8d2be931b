"""The human-facing page at GET /: received messages as DingTalk would show them, refreshing.

It is for newcomers watching alerts arrive without a DingTalk account, so each message is drawn
as a chat bubble by bridge.chatview (DingTalk's markdown subset, highlighted @-mentions, link and
action cards), grouped by the robot, conversation or app it went to (the most recently active
first, newest message first), with what a group member cannot see: when it came, who it went
to, who DingTalk refused or dropped, whether it was recalled, and what DingTalk would not show
as written. Recent rejections explain why a message did not arrive. Every value is escaped
(chatview escapes its own); tokens are masked.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bridge.chatview import ChatView, app_robot_view, card_view, notice_view, robot_view
from bridge.chatview import stylesheet as chat_stylesheet
from bridge.simulator.traffic import mask

REFRESH_SECONDS = 3
MAX_MESSAGES = 200
MAX_REJECTIONS = 20
MAX_CARDS = 50

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0 auto;padding:1em;max-width:820px;background:#f2f3f5;
 color:#222}
h1{font-size:1.4em}h2{font-size:1.05em;margin:1.4em 0 .4em;color:#444}
h2 small{font-weight:400;color:#888}
.conv{background:#e9ebee;border-radius:8px;padding:.4em .8em;margin:.8em 0}
.item{margin:.6em 0 1em}
.meta{color:#666;font-size:.82em;overflow-wrap:anywhere}.title{color:#444}
.problems{margin:.2em 0 0 44px;padding-left:1.1em;color:#8a5300;font-size:.82em}
.rej{color:#b00020}
table.rejections{border-collapse:collapse;display:block;overflow-x:auto}
table.rejections td{padding:.15em .8em .15em 0;font-size:.9em;vertical-align:top}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _view(message: Mapping[str, Any]) -> ChatView:
    """The chat bubble of one received message, by the API it came through."""
    kind = message["kind"]
    if kind == "app_robot":
        return app_robot_view(message["msg_key"], message["msg_param"])
    if kind == "work_notice":
        return notice_view(message["body"].get("msg") or {})
    return robot_view(message["body"])  # a robot's webhook or a session reply


def _conversation(message: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    """Where a message went: the key of its group, and the group's heading (tokens masked, so
    two robots may share a heading, never a group)."""
    kind = message["kind"]
    if kind == "robot":
        return (kind, message["token"]), f"robot {mask(message['token'])}"
    if kind == "session":
        return (kind, message["session"]), f"session reply {mask(message['session'])}"
    if kind == "work_notice":
        return (kind, message["app_key"]), f"work notices of app {message['app_key']}"
    where = message["open_conversation_id"]
    key = (kind, message["robot_code"], where or "")
    return key, f"app robot {message['robot_code']} · " + (
        f"group {where}" if where else "one-to-one"
    )


def _source(message: Mapping[str, Any]) -> str:
    kind = message["kind"]
    if kind == "robot":
        return f"robot {mask(message['token'])}"
    if kind == "session":
        return "session reply"
    if kind == "app_robot":
        return f"app robot {message['robot_code']}"
    return f"work notice from {message['app_key']} (task {message['task_id']})"


def _recipients(message: Mapping[str, Any], view: ChatView) -> str:
    """Who the message went to, who DingTalk refused or dropped, whether it was recalled."""
    kind = message["kind"]
    if kind == "app_robot":
        parts = [f"to group {_e(message['open_conversation_id'])}"]
        if message["user_ids"]:
            parts = [f"to: {_e(', '.join(message['recipients']) or '-')}"]
        refused = message["invalid"] + message["flow_controlled"]
        if refused:
            parts.append(
                f'<span class="rej">refused (invalid/flow control): {_e(", ".join(refused))}</span>'
            )
        if message["recalled"]:
            parts.append('<span class="rej">recalled</span>')
        return " · ".join(parts)
    if kind == "work_notice":
        parts = [f"to: {_e(', '.join(message['recipients']) or '-')}"]
        if message["dept_id_list"]:
            parts.append(f"depts: {_e(', '.join(message['dept_id_list']))}")
        if message["to_all_user"]:
            parts.append("to all users")
        if message["forbidden"]:
            dropped = ", ".join(message["forbidden"])
            parts.append(f'<span class="rej">dropped (duplicate/limit): {_e(dropped)}</span>')
        return " · ".join(parts)
    pinged = " ".join(f"@{name}" for name in view.mentions)
    return f"pings: {_e(pinged)}" if pinged else ""


def _item(meta: str, view: ChatView, extra: str = "") -> str:
    title = f' · <span class="title">title: {_e(view.title)}</span>' if view.title else ""
    problems = "".join(f"<li>{_e(p)}</li>" for p in view.problems)
    return (
        f'<div class="item"><div class="meta">{meta}{title}</div>'
        + (f'<div class="meta">{extra}</div>' if extra else "")
        + view.html
        + (f'<ul class="problems">{problems}</ul>' if problems else "")
        + "</div>"
    )


def _message(message: Mapping[str, Any]) -> str:
    view = _view(message)
    meta = (
        f"#{_e(message['index'])} · {_e(_when(message['time']))} · "
        f"{_e(_source(message))} · {_e(message['msgtype'])}"
    )
    return _item(meta, view, _recipients(message, view))


def _conversations(messages: Sequence[Mapping[str, Any]]) -> str:
    """Messages grouped by where they went: the group with the newest message first."""
    groups: dict[tuple[str, ...], tuple[str, list[Mapping[str, Any]]]] = {}
    for message in reversed(messages):
        key, heading = _conversation(message)
        groups.setdefault(key, (heading, []))[1].append(message)
    return "".join(
        f'<section class="conv"><h2>{_e(heading)} <small>{len(shown)} message(s)</small></h2>'
        + "".join(_message(m) for m in shown)
        + "</section>"
        for heading, shown in groups.values()
    )


def _card(call: Mapping[str, Any]) -> str:
    body = call.get("body") or {}
    meta = (
        f"{_e(_when(call['time']))} · card {_e(call['op'])} · "
        f"{_e(body.get('outTrackId', ''))} · app {_e(call.get('app_key', ''))}"
    )
    return _item(meta, card_view(body))


def _rejection(request: Mapping[str, Any]) -> str:
    who = mask(request["token"]) if request["token"] else (request["app_key"] or "")
    status = f"fault: {request['fault']}" if request["fault"] else f"errcode {request['errcode']}"
    return (
        f"<tr><td>{_e(_when(request['time']))}</td><td>{_e(request['path'])}</td>"
        f'<td>{_e(who)}</td><td class="rej">{_e(status)}</td><td>{_e(request["errmsg"])}</td></tr>'
    )


def render_page(
    messages: Sequence[dict[str, Any]],
    requests: Sequence[dict[str, Any]],
    now: float,
    cards: Sequence[dict[str, Any]] = (),
) -> str:
    shown = _conversations(messages[-MAX_MESSAGES:])
    failed = [r for r in requests if r["errcode"] != 0 or r["fault"]][-MAX_REJECTIONS:]
    rejections = "".join(_rejection(r) for r in reversed(failed))
    card_items = "".join(_card(c) for c in reversed(cards[-MAX_CARDS:]))
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<meta http-equiv='refresh' content='{REFRESH_SECONDS}'>"
        f"<title>DingTalk simulator</title><style>{_STYLE}{chat_stylesheet()}</style></head><body>"
        "<h1>DingTalk simulator</h1>"
        f'<p class="meta">{len(messages)} message(s) received · {len(requests)} request(s) · '
        f"simulator time {_e(_when(now))} · refreshes every {REFRESH_SECONDS}s · "
        "JSON: <a href='/_sim/messages'>/_sim/messages</a>, <a href='/_sim/requests'>requests</a>,"
        " <a href='/_sim/stats'>stats</a>, <a href='/_sim/cards'>cards</a></p>"
        + (shown or "<p>No messages yet. Point the bridge at this address.</p>")
        + (f"<h2>Interactive cards</h2>{card_items}" if card_items else "")
        + (
            f'<h2>Recent rejections</h2><table class="rejections">{rejections}</table>'
            if rejections
            else ""
        )
        + "</body></html>"
    )
