"""The `dingtalk_robot` kind: @-messages to an enterprise-internal robot, commands from the chat
(reference §5; the runtime half is bridge/inputs/chat.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bridge.config.context import CompileContext, as_dict, as_strs, canonical
from bridge.config.inputs.kind import Definition, InputKind
from bridge.config.inputs.listening import Listen, StreamApp, compile_stream_app, listen_of


@dataclass(frozen=True)
class ChatInput:
    """An enterprise-internal robot's @-messages: commands from the chat (reference §5)."""

    name: str
    path: str  # "" when it listens on Stream
    app_secret: str = field(repr=False)  # the robot app's AppSecret: checks the `sign` header
    staff_ids: frozenset[str] = frozenset()  # may silence, expire and ack
    admins: bool = True  # the chat's admins (isAdmin) may too
    max_age: float = 3_600.0
    max_body_bytes: int = 65_536
    listen: Listen = "http"
    stream: StreamApp | None = None  # listen: stream: the app whose connection it listens on
    type: Literal["dingtalk_robot"] = "dingtalk_robot"
    definition: str = field(default="", repr=False)

    def secrets(self) -> tuple[str, ...]:
        return (self.app_secret,) if self.app_secret else ()


def compile_chat(ctx: CompileContext, d: Definition) -> ChatInput:
    spec, where = d.spec, d.where
    allow = as_dict(spec.get("allow"))
    max_body = spec.get("max_body_bytes", 65_536)
    stream = compile_stream_app(ctx, where, spec, http_only=())
    return ChatInput(
        name=d.name,
        path=str(spec.get("path", "")) if stream is None else "",
        app_secret=stream.app_secret
        if stream is not None
        else ctx.secret(where, spec, "app_secret", required=True) or "",
        staff_ids=frozenset(as_strs(allow.get("staff_ids"))),
        admins=allow.get("admins") is not False,
        max_age=ctx.duration((*where, "max_age"), spec.get("max_age"), 3_600.0),
        max_body_bytes=max_body if isinstance(max_body, int) else 65_536,
        listen=listen_of(spec),
        stream=stream,
        definition=canonical(spec),
    )


CHAT = InputKind(type="dingtalk_robot", compile=compile_chat, routed=True)
