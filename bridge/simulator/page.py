"""The human-facing page at GET /: received messages, newest first, refreshing itself.

It is for newcomers watching alerts arrive without a DingTalk account, so it shows what a group
member would see (title, text, who gets notified) plus recent rejections, which explain why a
message did not arrive. Every value is HTML-escaped; tokens are masked.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bridge.simulator.traffic import mask

REFRESH_SECONDS = 3
MAX_MESSAGES = 200
MAX_REJECTIONS = 20

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;background:#f5f6f7;color:#222}
.msg{background:#fff;border-radius:6px;padding:.7em 1em;margin:.6em 0;box-shadow:0 1px 2px #0002}
.meta{color:#666;font-size:.85em}.title{font-weight:600;margin:.3em 0}
pre{white-space:pre-wrap;word-break:break-word;margin:.3em 0;font-family:inherit}
.hl{color:#0a6cff;font-weight:600}.dim{color:#999}.rej{color:#b00020}
table{border-collapse:collapse}td{padding:.15em .8em .15em 0;font-size:.9em}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _app_robot(message: dict[str, Any]) -> str:
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


def _mentions(message: dict[str, Any]) -> str:
    if message["kind"] == "app_robot":
        return _app_robot(message)
    if message["kind"] == "work_notice":
        parts = [f"to: {_e(', '.join(message['recipients']) or '-')}"]
        if message["dept_id_list"]:
            parts.append(f"depts: {_e(', '.join(message['dept_id_list']))}")
        if message["to_all_user"]:
            parts.append("to all users")
        if message["forbidden"]:
            dropped = ", ".join(message["forbidden"])
            parts.append(f'<span class="rej">dropped (duplicate/limit): {_e(dropped)}</span>')
        return " · ".join(parts)
    mentions = message["mentions"]
    highlighted = mentions["highlighted_mobiles"] + mentions["highlighted_userids"]
    parts = [f'<span class="hl">@{_e(m)}</span>' for m in highlighted]
    parts += [
        f'<span class="dim" title="no @{_e(m)} in the text, so DingTalk does not notify">'
        f"@{_e(m)} (not highlighted)</span>"
        for m in mentions["mobiles"] + mentions["userids"]
        if m not in highlighted
    ]
    if mentions["all"]:
        parts.append('<span class="hl">@all</span>')
    return " ".join(parts)


def _message(message: dict[str, Any]) -> str:
    if message["kind"] == "robot":
        source = f"robot {mask(message['token'])}"
    elif message["kind"] == "app_robot":
        source = f"app robot {message['robot_code']}"
    else:
        source = f"work notice from {message['app_key']} (task {message['task_id']})"
    mentions = _mentions(message)
    return (
        '<div class="msg">'
        f'<div class="meta">#{_e(message["index"])} · {_e(_when(message["time"]))} · '
        f"{_e(source)} · {_e(message['msgtype'])}</div>"
        f'<div class="title">{_e(message["title"])}</div>'
        f"<pre>{_e(message['text'])}</pre>"
        + (f'<div class="meta">{mentions}</div>' if mentions else "")
        + "</div>"
    )


def _rejection(request: dict[str, Any]) -> str:
    who = mask(request["token"]) if request["token"] else (request["app_key"] or "")
    status = f"fault: {request['fault']}" if request["fault"] else f"errcode {request['errcode']}"
    return (
        f"<tr><td>{_e(_when(request['time']))}</td><td>{_e(request['path'])}</td>"
        f'<td>{_e(who)}</td><td class="rej">{_e(status)}</td><td>{_e(request["errmsg"])}</td></tr>'
    )


def render_page(
    messages: Sequence[dict[str, Any]], requests: Sequence[dict[str, Any]], now: float
) -> str:
    shown = [_message(m) for m in reversed(messages[-MAX_MESSAGES:])]
    failed = [r for r in requests if r["errcode"] != 0 or r["fault"]][-MAX_REJECTIONS:]
    rejections = "".join(_rejection(r) for r in reversed(failed))
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{REFRESH_SECONDS}'>"
        f"<title>DingTalk simulator</title><style>{_STYLE}</style></head><body>"
        "<h1>DingTalk simulator</h1>"
        f'<p class="meta">{len(messages)} message(s) received · {len(requests)} request(s) · '
        f"simulator time {_e(_when(now))} · refreshes every {REFRESH_SECONDS}s · "
        "JSON: <a href='/_sim/messages'>/_sim/messages</a>, <a href='/_sim/requests'>requests</a>,"
        " <a href='/_sim/stats'>stats</a></p>"
        + ("".join(shown) or "<p>No messages yet. Point the bridge at this address.</p>")
        + (f"<h2>Recent rejections</h2><table>{rejections}</table>" if rejections else "")
        + "</body></html>"
    )
