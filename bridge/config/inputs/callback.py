"""The `dingtalk_callback` kind: DingTalk's event callbacks, verified and decrypted (reference §4;
the runtime half is bridge/inputs/callback.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bridge.config.aeskey import aes_key_bytes
from bridge.config.context import CompileContext, canonical
from bridge.config.inputs.kind import Definition, InputKind
from bridge.config.inputs.listening import Listen, StreamApp, compile_stream_app, listen_of

CALLBACK_DEFAULT_TITLE = "[{{ labels.EventType }}] {{ input }}"


@dataclass(frozen=True)
class CallbackInput:
    """DingTalk's event callbacks: HTTP push, verified and decrypted (reference §4), or the
    events of an app's Stream connection (`stream`)."""

    name: str
    path: str  # "" when it listens on Stream
    token: str = field(repr=False)  # DingTalk's callback token: signs, it is not a bearer token
    aes_key: str = field(repr=False)
    owner_key: str = ""  # corpId (register_call_back) or appKey (event subscription)
    max_age: float = 3_600.0  # callbacks with a timestamp further from now are refused
    max_body_bytes: int = 65_536
    listen: Listen = "http"
    stream: StreamApp | None = None  # listen: stream: the app whose connection it listens on
    type: Literal["dingtalk_callback"] = "dingtalk_callback"
    definition: str = field(default="", repr=False)

    def secrets(self) -> tuple[str, ...]:
        app_secret = self.stream.app_secret if self.stream is not None else ""
        return tuple(s for s in (self.token, self.aes_key, app_secret) if s)


def compile_callback(ctx: CompileContext, d: Definition) -> CallbackInput:
    spec, where = d.spec, d.where
    stream = compile_stream_app(ctx, where, spec, http_only=("token", "aes_key", "owner_key"))
    if stream is None:
        for key in ("app_secret", "app_secret_file"):
            if key in spec:
                ctx.problem((*where, key), f"{key} is for listen: stream", "add listen: stream")
    over_http = stream is None
    token = ctx.secret(where, spec, "token", required=over_http) or ""
    aes_key = ctx.secret(where, spec, "aes_key", required=over_http) or ""
    if aes_key:
        try:
            aes_key_bytes(aes_key)
        except ValueError as exc:
            at = (*where, "aes_key_file" if "aes_key_file" in spec else "aes_key")
            ctx.problem(at, str(exc), "copy the EncodingAESKey exactly as DingTalk shows it")
    max_body = spec.get("max_body_bytes", 65_536)
    return CallbackInput(
        name=d.name,
        path=str(spec.get("path", "")) if over_http else "",
        token=token,
        aes_key=aes_key,
        owner_key=str(spec.get("owner_key", "")),
        max_age=ctx.duration((*where, "max_age"), spec.get("max_age"), 3_600.0),
        max_body_bytes=max_body if isinstance(max_body, int) else 65_536,
        listen=listen_of(spec),
        stream=stream,
        definition=canonical(spec),
    )


CALLBACK = InputKind(
    type="dingtalk_callback",
    compile=compile_callback,
    routed=True,
    default_title=CALLBACK_DEFAULT_TITLE,
    default_body="webhook",  # a callback's fields show like a webhook body's
)
