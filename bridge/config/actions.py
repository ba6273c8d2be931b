"""The `actions` section (one-tap Ack / Silence / Runbook on alert messages) and each rule's
`actions` list, checked together: a rule that asks for signed links needs a `base_url` to build
them on, and a message kind that can carry them.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

from bridge.alerting.actions import ACTIONS, BUTTONS
from bridge.config import model as m
from bridge.config.context import CompileContext, as_dict, as_list, as_strs
from bridge.config.yamlsource import PathKey
from bridge.durations import MAX_SILENCE, format_duration

MIN_SECRET_CHARS = 16  # an HMAC key anyone could guess makes links anyone could forge
MAX_SILENCE_CHOICES = 5  # buttons a phone shows in one row or column
# A message kind that can carry links beside its text (a link or feed card is all one link).
CARRIES_ACTIONS = ("text", "markdown", "actionCard")
BASE_URL_HINT = "the URL at which phones reach this bridge, e.g. actions: {base_url: https://bridge.example.com}"


def compile_actions(ctx: CompileContext, raw: Any) -> m.ActionsConfig:
    if raw is None:
        return m.ActionsConfig()
    spec, where = as_dict(raw), ("actions",)
    secret = ctx.secret(where, spec, "secret", required=False)
    if secret is not None and len(secret) < MIN_SECRET_CHARS:
        source = "secret_file" if "secret_file" in spec else "secret"
        ctx.problem(
            (*where, source),
            f"the secret is {len(secret)} characters: at least {MIN_SECRET_CHARS}",
            "e.g. the output of `openssl rand -hex 32`; or leave it out and the bridge keeps a "
            "generated one in its state store",
        )
    ttl = ctx.duration((*where, "ttl"), spec.get("ttl"), m.DEFAULT_ACTION_TTL)
    if ttl <= 0:
        ctx.problem((*where, "ttl"), "a link must stay valid for some time", 'e.g. "24h"')
    return m.ActionsConfig(
        base_url=_base_url(ctx, (*where, "base_url"), spec.get("base_url")),
        secret=secret,
        ttl=ttl,
        silence=_silence_choices(ctx, (*where, "silence"), spec.get("silence")),
    )


def _base_url(ctx: CompileContext, at: PathKey, value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None  # absent (no links), or the wrong type (the schema says so)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        ctx.problem(at, "not an http(s) URL", BASE_URL_HINT)
        return None
    if parts.query or parts.fragment:
        ctx.problem(at, "a base URL has no ?query or #fragment", BASE_URL_HINT)
        return None
    return value.rstrip("/")


def _silence_choices(ctx: CompileContext, at: PathKey, value: Any) -> tuple[float, ...]:
    if value is None:
        return m.DEFAULT_SILENCE_CHOICES
    choices: list[float] = []
    for index, item in enumerate(as_list(value)):
        seconds = ctx.duration((*at, index), item, math.nan, maximum=MAX_SILENCE)
        if math.isnan(seconds):
            continue  # not a duration: the schema (or the duration check) said so
        if seconds <= 0:
            ctx.problem((*at, index), "a silence must last some time", 'e.g. "1h"')
        elif seconds in choices:
            ctx.problem((*at, index), f"{format_duration(seconds)} is offered twice")
        else:
            choices.append(seconds)
    if len(choices) > MAX_SILENCE_CHOICES:
        ctx.problem(at, f"at most {MAX_SILENCE_CHOICES} silence lengths fit on a message")
    return tuple(choices)


def rule_actions(ctx: CompileContext, where: PathKey, spec: dict[str, Any]) -> tuple[str, ...]:
    """A rule's `actions` list, each once, in the order given (unknown names: the schema)."""
    names = as_strs(spec.get("actions"))
    for index, name in enumerate(names):
        if name in names[:index]:
            ctx.problem((*where, "actions", index), f'"{name}" is listed twice')
    return tuple(dict.fromkeys(n for n in names if n in BUTTONS))


def check_rule_actions(ctx: CompileContext, rules: list[m.Rule], actions: m.ActionsConfig) -> None:
    for rule in rules:
        if not rule.actions:
            continue
        at: PathKey = ("rules", rule.index, "actions")
        if rule.msgtype not in CARRIES_ACTIONS:
            ctx.problem(
                at,
                f"a {rule.msgtype} message cannot carry action buttons",
                "use msgtype markdown (links under the text), actionCard (buttons) or text",
            )
        signed = [name for name in rule.actions if name in ACTIONS]
        if signed and actions.base_url is None:
            ctx.problem(at, f"{' and '.join(signed)} links need actions.base_url", BASE_URL_HINT)
        if "silence" in rule.actions and not actions.silence:
            ctx.problem(
                at, "silence is listed, but actions.silence offers no length", 'e.g. ["1h"]'
            )
