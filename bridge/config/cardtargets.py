"""A target that sends interactive cards needs a way for their clicks to come back.

DingTalk sends a card's button clicks over the Stream connection of the app whose robot sent
the card (callbackType STREAM; reference/dingtalk-stream.md §10). The bridge opens that
connection for a `dingtalk_robot` input that listens on Stream, and that input's allow list
decides who may act: without one for the target's app, every click would be lost.
"""

from __future__ import annotations

from collections.abc import Mapping

from bridge.config import model as m
from bridge.config.context import CompileContext
from bridge.config.inputs.chat import ChatInput


def stream_chat_of(inputs: Mapping[str, m.Input], app_key: str) -> ChatInput | None:
    """The `dingtalk_robot` input listening on Stream for `app_key`'s robot (the first by name),
    whose allow list says who may click a card of that app."""
    for name in sorted(inputs):
        spec = inputs[name]
        if isinstance(spec, ChatInput) and spec.stream and spec.stream.app_key == app_key:
            return spec
    return None


def check_card_targets(
    ctx: CompileContext, targets: Mapping[str, m.Target], inputs: Mapping[str, m.Input]
) -> None:
    for name, target in targets.items():
        if not isinstance(target, m.AppRobotTarget) or not target.card_template_id:
            continue
        if stream_chat_of(inputs, target.app_key) is None:
            ctx.problem(
                ("targets", name, "card_template_id"),
                "card clicks come back over the Stream connection of the target's app, and no"
                " dingtalk_robot input listens on it",
                f"add a dingtalk_robot input with listen: stream and app_key {target.app_key}"
                " (its allow list says who may click), or remove card_template_id",
            )
