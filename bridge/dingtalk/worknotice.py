"""Message -> the work notification's asyncsend_v2 JSON body (reference/dingtalk.md §3.1). Pure.

- `userid_list` and `dept_id_list` are comma-separated strings, not JSON arrays.
- The card type is snake_case `action_card` with `markdown`, unlike the robot's `actionCard`.
- DingTalk silently drops identical content sent to the same user on the same day (forbidden
  143106, reported only by getsendresult), so every message carries a `unique` line made from the
  message itself (see `unique_line`).

`WorkNoticeChannel` (at the end) is the work notice's `Channel`: posted with the app's token,
accepted sends confirmed later by getsendresult (delivery/noticepoll.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from bridge.config.model import WorkNoticeTarget
from bridge.dingtalk.channel import Body, rate_key
from bridge.dingtalk.client import DingTalkClient
from bridge.dingtalk.responses import AwaitingResult, Delivered, SendOutcome, send_outcome
from bridge.errors import DeliveryError, Reason
from bridge.model import Message

ASYNCSEND = "/topapi/message/corpconversation/asyncsend_v2"
# Work notices have no documented body limit we trust (an old page says 2,048 bytes of msg);
# keep digests for them modest.
WORK_NOTICE_DIGEST_BYTES = 16_384

# How many characters of a message id the unique line shows. Ids are 16 hex digits of time and 16
# random ones (pipeline.new_id): the end is the random part, so the last 12 differ between any
# two messages (48 random bits) and `outbox show <them>` finds the message.
ID_TAIL = 12
# As long as the longest line unique_line makes for one message (digests measure their body with
# it before the ids are known; a digest's own line is longer by "+N·hash", a few bytes).
UNIQUE_PLACEHOLDER = "0000-00-00 00:00:00 · #" + "0" * ID_TAIL + "+000·000000"


def unique_line(ids: Sequence[str], accepted_at: float, tz: tzinfo) -> str:
    """The line that makes a work notice's content unique, from the message itself.

    DingTalk drops a second identical content to a user on one day. The line must therefore
    differ between two messages (the id's random tail: two identical alerts accepted in the same
    second still differ) and must NOT differ between two tries of one message: a try that timed
    out may have been delivered, and then DingTalk's own dedup absorbs the retry instead of the
    user receiving it twice. So nothing here depends on when it is sent: the time shown is when
    the bridge accepted the message, in the configured time zone like the rest of the message.
    A digest is identified by every id it merges (its oldest, how many more, and a hash of all),
    so a retry of the same digest is the same content and a different batch is not.
    """
    when = datetime.fromtimestamp(accepted_at, UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
    if not ids:
        return f"{when} · #"
    line = f"{when} · #{ids[0][-ID_TAIL:]}"
    if len(ids) > 1:
        digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:6]
        line += f"+{len(ids) - 1}·{digest}"
    return line


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
    # The target's fixed userids, and those its `recipients:` resolved to for this message.
    userids = tuple(dict.fromkeys((*target.userids, *message.only_users)))
    if not (userids or target.dept_ids or target.to_all_user):
        raise DeliveryError(
            Reason.NO_RECIPIENTS,
            f"target {target.name}: its recipients name nobody with a userid for this message",
            retryable=False,
        )
    if userids:
        body["userid_list"] = ",".join(userids)
    if target.dept_ids:
        body["dept_id_list"] = ",".join(target.dept_ids)
    if target.to_all_user:
        body["to_all_user"] = True
    return body


class WorkNoticeChannel:
    """An internal app's work notification to users, departments or everyone (§3)."""

    digest_limit = WORK_NOTICE_DIGEST_BYTES

    def __init__(self, target: WorkNoticeTarget, client: DingTalkClient | None = None) -> None:
        """`client`: None for a channel that only builds bodies (the `render` preview)."""
        self.target = target
        self.client = client
        self.name = target.name
        self.policy = target.policy
        self.timeout = target.timeout
        # One recipients-per-minute quota per app (§3.1, 143103), whatever target uses it.
        self.rate_key = rate_key("app", target.api_base, target.app_key)

    def bodies(
        self, message: Message, ids: Sequence[str], accepted_at: float, tz: tzinfo
    ) -> list[Body]:
        return [work_notice_body(self.target, message, unique_line(ids, accepted_at, tz))]

    def digest_body(self, message: Message) -> Body:
        return work_notice_body(self.target, message, UNIQUE_PLACEHOLDER)

    def _client(self) -> DingTalkClient:
        if self.client is None:
            raise RuntimeError(f"target {self.name}: a channel made without a client cannot post")
        return self.client

    def post(self, body: Body) -> SendOutcome:
        """asyncsend_v2 (the app's token refreshed once if expired): errcode 0 means queued."""
        try:
            answer = self._client().app_call(self.target, "POST", ASYNCSEND, body, "work notice")
        except DeliveryError as exc:
            return send_outcome(exc, self.policy)
        task_id = answer.get("task_id")
        return AwaitingResult(task_id) if isinstance(task_id, int) else Delivered()

    def send_result(self, task_id: int) -> Mapping[str, Any]:
        return self._client().get_send_result(self.target, task_id)

    def recipients(self) -> tuple[str, ...] | None:
        # (`recipients:` by name differ per message: who is meant is not known here either.)
        if self.target.dept_ids or self.target.to_all_user or self.target.recipients:
            return None
        return self.target.userids
