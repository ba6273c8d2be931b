"""The values that flow through the bridge: Event (from an input) and Message (to DingTalk).

All are frozen: once an input has built an Event nothing downstream changes it, which is what lets
rules and rendering be pure functions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Status = Literal["firing", "resolved"]
MsgType = Literal["text", "markdown", "link", "actionCard", "feedCard"]
MSGTYPES: tuple[MsgType, ...] = ("text", "markdown", "link", "actionCard", "feedCard")


@dataclass(frozen=True)
class Alert:
    """One alert inside an event (Alertmanager sends several per notification)."""

    status: Status
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime | None
    ends_at: datetime | None
    generator_url: str
    fingerprint: str
    # What a source sends per alert beyond Alertmanager's fields (Grafana: values, dashboardURL,
    # panelURL, silenceURL, imageURL, ...), shown to templates beside them. Kept on the alert, not
    # looked up in the payload, so it survives grouping (a group's alerts come from many bodies).
    extras: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """A normalized thing that happened, as an input saw it.

    `labels` are what rules match on; `payload` is the raw body for templates.
    """

    input: str
    kind: str  # the input type: "alertmanager", "webhook", ...
    status: Status
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    fingerprint: str
    received_at: datetime
    alerts: tuple[Alert, ...] = ()
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Mention:
    mobiles: tuple[str, ...] = ()
    userids: tuple[str, ...] = ()
    all: bool = False

    def __bool__(self) -> bool:
        return bool(self.mobiles or self.userids or self.all)


@dataclass(frozen=True)
class Button:
    title: str
    url: str


@dataclass(frozen=True)
class Link:
    title: str
    url: str
    pic_url: str = ""


@dataclass(frozen=True)
class Message:
    """What a rule rendered for one event, before it is shaped for a particular DingTalk API.

    `text` is the body: plain text for "text", markdown for the others. `url` and `pic_url` serve
    "link" (and a single-button actionCard through `buttons`); `links` serve "feedCard".
    """

    msgtype: MsgType
    title: str
    text: str
    mention: Mention = Mention()
    url: str = ""
    pic_url: str = ""
    buttons: tuple[Button, ...] = ()
    btn_orientation: str = "0"
    links: tuple[Link, ...] = ()
    fallback: bool = False  # True when the rule's template failed and the plain fallback was used
    # A follow-up for some of the target's users only (an app robot's one-to-one send that
    # DingTalk flow-controlled for them: dingtalk/approbot.py); () for all of them.
    only_users: tuple[str, ...] = ()
    # An app robot's interactive card (dingtalk/cards.py): its variables (cardParamMap), set
    # when the message goes as a card; with `card_updates`, the cards (outTrackIds) whose
    # variables this message changes instead of being a message of its own.
    card: tuple[tuple[str, str], ...] = ()
    card_updates: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rendered:
    """A message as a template made it, or the fallback with why the template failed."""

    message: Message
    error: str | None = None


@dataclass(frozen=True)
class Delivery:
    """One message bound for one target: the unit the sender works on.

    With `event` set, `message` holds only what is needed before sending (msgtype, title,
    mentions) and the body is rendered from `event` when the message is actually sent on its own:
    in a storm most messages are merged into digests, which need only their titles.
    """

    id: str
    rule: str
    target: str
    message: Message
    fingerprint: str
    created_at: datetime
    event_status: Status = "firing"
    event: Event | None = None


@dataclass
class Accepted:
    """What became of one request's events (the HTTP answer shows it)."""

    messages: int = 0  # queued for sending
    held_for_grouping: int = 0  # alert groups that will be sent at their next flush
    silenced: int = 0  # alerts swallowed by a silence
    not_sent_again_yet: int = 0  # unchanged alerts within their rule's repeat_interval
    unmatched: int = 0  # events no rule matched
    duplicate_notifications: int = 0  # a copy of a notification taken within its dedup_window


# Where a file input stands in one file: the value the tailer hands on with its events and the
# store keeps (bridge/store/tailstate.py). Here, in the shared vocabulary, because both sides name
# it and the input may not import the store.
FileKey = tuple[int, int]  # (st_dev, st_ino)


@dataclass(frozen=True)
class ChatSender:
    """Who typed a chat command at the bridge's robot, whether the input lets them change
    things (silence, expire, ack) or only read, and in which conversation they typed it."""

    staff_id: str
    nick: str
    allowed: bool
    # DingTalk's conversationId of the chat: for a group, the openConversationId an app_robot
    # target sends to (reference §5.3, dingtalk-stream.md §9). "" when the message had none.
    conversation: str = ""


@dataclass(frozen=True)
class Position:
    """Every line of the file at `path` before `offset` was handed on; `fp` hashes its first
    `fp_len` bytes (a file that reuses a deleted file's inode does not inherit its offset)."""

    path: str
    offset: int
    fp: str
    fp_len: int


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """A stable identity for a label set (order-independent), 16 hex digits."""
    # JSON keeps names and values apart whatever characters they contain.
    text = json.dumps(sorted(labels.items()), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
