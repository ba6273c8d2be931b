"""The `alertmanager` and `webhook` kinds: bodies POSTed to a path, guarded by a bearer token.

Both compile to `HttpInput` (as does `grafana`: grafana.py); a webhook also derives labels,
annotations, status, identity and time from the body with its templates (Alertmanager's payload
says all that itself), reads the body as JSON, a form or lines of text (`format`), and may fan a
JSON array out into one event per element (`items`). What its templates may read depends on
those two: `body` and `now` always, `item` (the element) with `items`, `line` with `format: text`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jinja2
from jinja2.environment import TemplateExpression

from bridge.config.context import CompileContext, canonical
from bridge.config.inputs.kind import Definition, InputKind
from bridge.config.templating import (
    ALERTMANAGER_VARIABLES,
    WEBHOOK_INPUT_VARIABLES,
    undeclared_variables,
)
from bridge.config.yamlsource import PathKey

# Copies of one notification from Alertmanager's HA peers arrive within seconds of each other (15 s
# per peer position); a distinct notification of the same group no sooner than its group_interval
# (5 m by default). One minute sits between; longer than MAX_DEDUP_WINDOW would start to swallow
# Alertmanager's own reminders (repeat_interval, 4 h by default, often set to an hour).
DEFAULT_DEDUP_WINDOW = 60.0
MAX_DEDUP_WINDOW = 3600.0

BodyFormat = Literal["json", "form", "text"]
FORMATS: tuple[BodyFormat, ...] = ("json", "form", "text")
ITEM, LINE = "item", "line"  # the element `items:` yields; the line of a text body


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
    starts_at: jinja2.Template | None = None  # webhook: an event's time, from the body
    ends_at: jinja2.Template | None = None  # webhook
    format: BodyFormat = "json"  # webhook: how the body is read
    items: TemplateExpression | None = None  # webhook, json: the array to fan out
    preset: str | None = None  # the preset it was made from (config/presets.py), if any
    token_header: str | None = None  # webhook: the header carrying the token itself
    definition: str = field(
        default="", repr=False
    )  # canonical JSON of the raw definition: equal text, unchanged input

    def secrets(self) -> tuple[str, ...]:
        return (self.token,) if self.token else ()


def compile_http_json(ctx: CompileContext, d: Definition) -> HttpInput:
    spec, where = d.spec, d.where
    max_body = spec.get("max_body_bytes", d.server_max_body)
    kind = spec.get("type")
    body_format = _format(spec)
    has_items = isinstance(spec.get("items"), str)
    # What the templates may read: `item` only with `items`, `line` only for text bodies.
    allowed = WEBHOOK_INPUT_VARIABLES | {ITEM} if has_items else WEBHOOK_INPUT_VARIABLES
    allowed = allowed | {LINE} if body_format == "text" else allowed

    def tpl(at: PathKey, source: Any) -> jinja2.Template | None:
        return _template(ctx, d, at, source, allowed)

    def tpls(key: str) -> dict[str, jinja2.Template]:
        raw = spec.get(key)
        pairs = raw.items() if isinstance(raw, dict) else ()
        return {str(k): t for k, v in pairs if (t := tpl((*where, key, k), v))}

    return HttpInput(
        name=d.name,
        type=kind if kind in ("alertmanager", "grafana") else "webhook",
        path=str(spec.get("path")),
        token=ctx.auth_token(where, spec, "token"),
        max_body_bytes=max_body if isinstance(max_body, int) else d.server_max_body,
        split=spec.get("split") is True,
        dedup_window=_dedup_window(ctx, d) if kind == "alertmanager" else 0.0,
        labels=tpls("labels"),
        annotations=tpls("annotations"),
        status=tpl((*where, "status"), spec.get("status")),
        fingerprint=tpl((*where, "fingerprint"), spec.get("fingerprint")),
        starts_at=tpl((*where, "starts_at"), spec.get("starts_at")),
        ends_at=tpl((*where, "ends_at"), spec.get("ends_at")),
        format=body_format,
        items=_items(ctx, d, body_format) if kind == "webhook" else None,
        preset=spec["preset"] if isinstance(spec.get("preset"), str) else None,
        token_header=spec["token_header"] if isinstance(spec.get("token_header"), str) else None,
        definition=canonical(spec),
    )


def _format(spec: dict[str, object]) -> BodyFormat:
    value = spec.get("format", "json")
    return next((f for f in FORMATS if f == value), "json")  # another value: the schema says so


def _items(
    ctx: CompileContext, d: Definition, body_format: BodyFormat
) -> TemplateExpression | None:
    """The compiled `items` expression, checked: JSON bodies only, and reading only `body` and
    `now` (it picks the elements that `item` then names)."""
    source, at = d.spec.get("items"), (*d.where, "items")
    if not isinstance(source, str):
        return None
    if body_format != "json":
        why = {
            "form": "a form body holds no array",
            "text": "a text body already gives one event per line",
        }[body_format]
        ctx.problem(
            at,
            f"items fans out a JSON array; {why}",
            "remove items, or set format: json for JSON bodies",
        )
        return None
    try:
        expression = d.env.compile_expression(source)
        names = undeclared_variables(d.env, "{{ (" + source + ") }}")
    except jinja2.TemplateSyntaxError as exc:
        ctx.problem(
            at,
            f"expression syntax error: {exc.message}",
            "e.g. items: body (the body is the array) or items: body.alerts",
        )
        return None
    for name in sorted(names - WEBHOOK_INPUT_VARIABLES):
        ctx.unknown_variable(at, name, WEBHOOK_INPUT_VARIABLES, "items")
    return expression


def _template(
    ctx: CompileContext, d: Definition, at: PathKey, source: Any, allowed: frozenset[str]
) -> jinja2.Template | None:
    """One of the input's templates, compiled; a variable it may not read is a problem, with
    its own hint for `item` and `line` (which other settings of the input would provide)."""
    template = ctx.template(d.env, at, source, None)
    if template is None:
        return None
    for name in sorted(undeclared_variables(d.env, source) - allowed):
        if name == ITEM:
            ctx.problem(
                at,
                'template uses "item", which only inputs with items: have',
                "add items: (e.g. items: body.alerts) to take one event per element of an"
                " array, or read the body as body",
            )
        elif name == LINE:
            ctx.problem(
                at,
                'template uses "line", which only inputs with format: text have',
                "add format: text to take one event per line of a text body",
            )
        else:
            ctx.unknown_variable(at, name, allowed, "template")
    return template


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
