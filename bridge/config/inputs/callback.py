"""The `dingtalk_callback` kind: DingTalk's event callbacks, verified and decrypted (reference §4;
the runtime half is bridge/inputs/callback.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bridge.config.aeskey import aes_key_bytes
from bridge.config.context import CompileContext, canonical
from bridge.config.inputs.kind import Definition, InputKind

CALLBACK_DEFAULT_TITLE = "[{{ labels.EventType }}] {{ input }}"


@dataclass(frozen=True)
class CallbackInput:
    """DingTalk's event callbacks (HTTP push), verified and decrypted (reference §4)."""

    name: str
    path: str
    token: str = field(repr=False)  # DingTalk's callback token: signs, it is not a bearer token
    aes_key: str = field(repr=False)
    owner_key: str = ""  # corpId (register_call_back) or appKey (event subscription)
    max_age: float = 3_600.0  # callbacks with a timestamp further from now are refused
    max_body_bytes: int = 65_536
    type: Literal["dingtalk_callback"] = "dingtalk_callback"
    definition: str = field(default="", repr=False)

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.token, self.aes_key) if s)


def compile_callback(ctx: CompileContext, d: Definition) -> CallbackInput:
    spec, where = d.spec, d.where
    token = ctx.secret(where, spec, "token", required=True) or ""
    aes_key = ctx.secret(where, spec, "aes_key", required=True) or ""
    if aes_key:
        try:
            aes_key_bytes(aes_key)
        except ValueError as exc:
            at = (*where, "aes_key_file" if "aes_key_file" in spec else "aes_key")
            ctx.problem(at, str(exc), "copy the EncodingAESKey exactly as DingTalk shows it")
    max_body = spec.get("max_body_bytes", 65_536)
    return CallbackInput(
        name=d.name,
        path=str(spec.get("path")),
        token=token,
        aes_key=aes_key,
        owner_key=str(spec.get("owner_key", "")),
        max_age=ctx.duration((*where, "max_age"), spec.get("max_age"), 3_600.0),
        max_body_bytes=max_body if isinstance(max_body, int) else 65_536,
        definition=canonical(spec),
    )


CALLBACK = InputKind(
    type="dingtalk_callback",
    compile=compile_callback,
    routed=True,
    default_title=CALLBACK_DEFAULT_TITLE,
    default_body="webhook",  # a callback's fields show like a webhook body's
)
