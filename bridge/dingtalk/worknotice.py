"""Message -> the work notification's asyncsend_v2 JSON body (reference/dingtalk.md §3.1). Pure.

- `userid_list` and `dept_id_list` are comma-separated strings, not JSON arrays.
- The card type is snake_case `action_card` with `markdown`, unlike the robot's `actionCard`.
- DingTalk silently drops identical content sent to the same user on the same day, so every
  message carries a `unique` line (the caller passes the send time and message id).
"""

from __future__ import annotations

from typing import Any

from bridge.config.model import WorkNoticeTarget
from bridge.model import Message


def work_notice_msg(message: Message, unique: str) -> dict[str, Any]:
    kind = message.msgtype
    if kind == "text":
        return {"msgtype": "text", "text": {"content": f"{message.text}\n{unique}"}}
    # Markdown bodies end with a small heading line: a blank line before it keeps it separate.
    text = f"{message.text}\n\n###### {unique}"
    if kind == "link":
        return {
            "msgtype": "link",
            "link": {
                "title": message.title,
                "text": f"{message.text} {unique}",
                "messageUrl": message.url,
                "picUrl": message.pic_url or "@lALOAAAAAA",  # picUrl is required here
            },
        }
    if kind == "actionCard":
        card: dict[str, Any] = {"title": message.title, "markdown": text}
        if message.buttons:
            card["btn_orientation"] = message.btn_orientation
            card["btn_json_list"] = [
                {"title": b.title, "action_url": b.url} for b in message.buttons
            ]
        else:
            card["single_title"] = "查看详情"
            card["single_url"] = message.url
        return {"msgtype": "action_card", "action_card": card}
    # markdown, and feedCard's fallback (config check rejects feedCard for work notices)
    return {"msgtype": "markdown", "markdown": {"title": message.title, "text": text}}


def work_notice_body(target: WorkNoticeTarget, message: Message, unique: str) -> dict[str, Any]:
    body: dict[str, Any] = {"agent_id": target.agent_id, "msg": work_notice_msg(message, unique)}
    if target.userids:
        body["userid_list"] = ",".join(target.userids)
    if target.dept_ids:
        body["dept_id_list"] = ",".join(target.dept_ids)
    if target.to_all_user:
        body["to_all_user"] = True
    return body
