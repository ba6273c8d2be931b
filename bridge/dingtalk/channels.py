"""The channel registry: which `Channel` carries each target type.

This table (with config compilation) is the only place that tells target types apart: a new
target type is its channel module, its config type and schema, and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo
from typing import Any

from bridge.config.model import AppRobotTarget, RobotTarget, Target, WorkNoticeTarget
from bridge.dingtalk.approbot import AppRobotChannel
from bridge.dingtalk.channel import Body, Channel
from bridge.dingtalk.client import DingTalkClient
from bridge.dingtalk.responses import AwaitingResult, Failed, SendOutcome
from bridge.dingtalk.robot import RobotChannel
from bridge.dingtalk.worknotice import WorkNoticeChannel
from bridge.errors import DeliveryError
from bridge.model import Message

CHANNELS: dict[type[Any], Callable[[Any, DingTalkClient | None], Channel]] = {
    RobotTarget: RobotChannel,
    WorkNoticeTarget: WorkNoticeChannel,
    AppRobotTarget: AppRobotChannel,
}


def channel_for(target: Target, client: DingTalkClient | None) -> Channel:
    """The channel of `target`, posting through `client` (None: it only builds bodies)."""
    return CHANNELS[type(target)](target, client)


def bodies_for(
    target: Target, message: Message, ids: list[str], accepted_at: float, tz: tzinfo
) -> list[Body]:
    """The bodies that carry `message` to `target`, in order (see Channel.bodies)."""
    return channel_for(target, None).bodies(message, ids, accepted_at, tz)


def send_now(
    client: DingTalkClient,
    target: Target,
    message: Message,
    message_id: str,
    accepted_at: float,
    tz: tzinfo,
) -> int | None:
    """Send a whole message now, every part of it, for `send-test` (the daemon's senders pace
    parts through the rate window instead). The task id of a send awaiting its result, or None;
    DeliveryError if DingTalk or the network refused a part."""
    channel = channel_for(target, client)
    outcome: SendOutcome | None = None
    for body in channel.bodies(message, [message_id], accepted_at, tz):
        outcome = channel.post(body)
        if isinstance(outcome, Failed):
            raise DeliveryError(
                outcome.reason,
                outcome.detail,
                retryable=False,
                errcode=outcome.errcode,
                errmsg=outcome.errmsg,
            )
    return outcome.task_id if isinstance(outcome, AwaitingResult) else None
