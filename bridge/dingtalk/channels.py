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
from bridge.dingtalk.robot import RobotChannel
from bridge.dingtalk.worknotice import WorkNoticeChannel
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
