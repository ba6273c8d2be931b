"""Every input kind the config knows, by its `type`, and the compilation of the `inputs:` section.

A new kind is one module beside this one (its model, its compile step, what rules need of it)
and one entry in KINDS; the runtime half registers under the same name in bridge/inputs/kinds.py
and the schema describes it in `$defs` (tests/test_input_kinds.py checks all three agree).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from jinja2.sandbox import SandboxedEnvironment

from bridge.config.context import CompileContext, as_dict
from bridge.config.inputs.callback import CALLBACK, CallbackInput
from bridge.config.inputs.chat import CHAT, ChatInput
from bridge.config.inputs.file import FILE
from bridge.config.inputs.grafana import GRAFANA
from bridge.config.inputs.http_json import ALERTMANAGER, WEBHOOK
from bridge.config.inputs.kind import Definition, InputKind, InputSpec
from bridge.config.inputs.listening import StreamApp, check_shared_apps
from bridge.config.inputs.prometheus import PROMETHEUS

KINDS: Mapping[str, InputKind] = {
    k.type: k for k in (ALERTMANAGER, WEBHOOK, FILE, CALLBACK, CHAT, PROMETHEUS, GRAFANA)
}
RESERVED_PREFIX = "/-/"


def kind_of(spec: Any) -> InputKind | None:
    """The kind of a raw definition; None for a type the schema has already refused."""
    kind = spec.get("type") if isinstance(spec, dict) else None
    return KINDS.get(kind) if isinstance(kind, str) else None


def compile_inputs(
    ctx: CompileContext, specs: dict[str, Any], env: SandboxedEnvironment, server_max_body: int
) -> dict[str, InputSpec]:
    out: dict[str, InputSpec] = {}
    paths: dict[str, str] = {}  # path -> the input listening on it
    for name, raw in specs.items():
        spec, where = as_dict(raw), ("inputs", name)
        kind = kind_of(spec)
        if kind is None:
            continue  # the schema already reported it
        if kind.routed and isinstance(configured := spec.get("path"), str):
            path = kind.route(configured)
            if path.startswith(RESERVED_PREFIX) or path == "/metrics":
                ctx.problem(
                    (*where, "path"), f'paths under "{RESERVED_PREFIX}" and "/metrics" are reserved'
                )
            elif path in paths:
                ctx.problem(
                    (*where, "path"), f'path "{path}" is already used by input "{paths[path]}"'
                )
            paths[path] = name
        out[name] = kind.compile(ctx, Definition(name, spec, where, env, server_max_body))
    check_shared_apps(
        ctx,
        {n: (i.type, app) for n, i in out.items() if (app := stream_app(i)) is not None},
    )
    return out


def stream_app(spec: InputSpec) -> StreamApp | None:
    """The app whose Stream connection `spec` listens on; None when DingTalk posts to it."""
    return spec.stream if isinstance(spec, ChatInput | CallbackInput) else None


def rule_variables(kinds: Collection[str]) -> frozenset[str]:
    """What the events of every kind in `kinds` add to the common template variables (nothing
    when the rule's inputs are of several kinds that differ, or unknown)."""
    extra = [KINDS[k].variables for k in kinds]
    return frozenset.intersection(*extra) if extra else frozenset()


def single(kinds: Collection[str]) -> InputKind | None:
    """The kind, when a rule is fed by inputs of exactly one."""
    return KINDS[next(iter(kinds))] if len(kinds) == 1 else None
