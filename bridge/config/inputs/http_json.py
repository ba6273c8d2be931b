"""The `alertmanager` and `webhook` kinds: JSON POSTed to a path, guarded by a bearer token.

Both compile to `HttpInput` (as does `grafana`: grafana.py); a webhook also derives labels,
annotations, status and identity from the body with its templates (Alertmanager's payload says
all that itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import jinja2

from bridge.config.context import CompileContext, canonical
from bridge.config.inputs.kind import Definition, InputKind
from bridge.config.templating import ALERTMANAGER_VARIABLES, WEBHOOK_INPUT_VARIABLES

# Copies of one notification from Alertmanager's HA peers arrive within seconds of each other (15 s
# per peer position); a distinct notification of the same group no sooner than its group_interval
# (5 m by default). One minute sits between; longer than MAX_DEDUP_WINDOW would start to swallow
# Alertmanager's own reminders (repeat_interval, 4 h by default, often set to an hour).
DEFAULT_DEDUP_WINDOW = 60.0
MAX_DEDUP_WINDOW = 3600.0


@dataclass(frozen=True)
class HttpInput:
    name: str
    type: Literal["alertmanager", "webhook", "grafana"]
    path: str
    token: str | None = field(repr=False)
    max_body_bytes: int
    split: bool = False  # alertmanager, grafana: one event per alert
    # alertmanager: seconds a notification's copies are absorbed after the first (0: never);
    # see bridge/pipeline/duplicates.py for what makes two copies the same
    dedup_window: float = 0.0
    labels: Mapping[str, jinja2.Template] = field(default_factory=dict)  # webhook
    annotations: Mapping[str, jinja2.Template] = field(default_factory=dict)  # webhook
    status: jinja2.Template | None = None  # webhook
    fingerprint: jinja2.Template | None = None  # webhook
    definition: str = field(
        default="", repr=False
    )  # canonical JSON of the raw definition: equal text, unchanged input

    def secrets(self) -> tuple[str, ...]:
        return (self.token,) if self.token else ()


def compile_http_json(ctx: CompileContext, d: Definition) -> HttpInput:
    spec, where = d.spec, d.where
    max_body = spec.get("max_body_bytes", d.server_max_body)

    allowed = WEBHOOK_INPUT_VARIABLES

    def tpl(key: str) -> jinja2.Template | None:
        return ctx.template(d.env, (*where, key), spec.get(key), allowed)

    kind = spec.get("type")
    return HttpInput(
        name=d.name,
        type=kind if kind in ("alertmanager", "grafana") else "webhook",
        path=str(spec.get("path")),
        token=ctx.auth_token(where, spec, "token"),
        max_body_bytes=max_body if isinstance(max_body, int) else d.server_max_body,
        split=spec.get("split") is True,
        dedup_window=_dedup_window(ctx, d) if kind == "alertmanager" else 0.0,
        labels=ctx.templates(d.env, (*where, "labels"), spec.get("labels"), allowed),
        annotations=ctx.templates(d.env, (*where, "annotations"), spec.get("annotations"), allowed),
        status=tpl("status"),
        fingerprint=tpl("fingerprint"),
        definition=canonical(spec),
    )


def _dedup_window(ctx: CompileContext, d: Definition) -> float:
    at = (*d.where, "dedup_window")
    window = ctx.duration(at, d.spec.get("dedup_window"), DEFAULT_DEDUP_WINDOW)
    if window > MAX_DEDUP_WINDOW:
        ctx.problem(
            at,
            f"must be at most {MAX_DEDUP_WINDOW / 3600:g}h",
            "copies from Alertmanager's peers arrive within seconds; a longer window also"
            " absorbs its reminders, sent after repeat_interval: keep it no longer than the"
            " route's group_interval (5m by default), or 0 to turn it off",
        )
        return DEFAULT_DEDUP_WINDOW
    return window


ALERTMANAGER = InputKind(
    type="alertmanager",
    compile=compile_http_json,
    routed=True,
    variables=ALERTMANAGER_VARIABLES,
    default_body="alertmanager",
    # Alertmanager already decides when to repeat (its own repeat_interval): a rule fed only by
    # it passes every notification on unless told otherwise.
    repeats_itself=True,
)
WEBHOOK = InputKind(type="webhook", compile=compile_http_json, routed=True)
