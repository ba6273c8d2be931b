"""The `prometheus` kind: the bridge answers Alertmanager's `POST /api/v2/alerts`, so Prometheus's
`alerting.alertmanagers` can point straight at it (the runtime half is
bridge/inputs/prometheus.py, the alert state bridge/alerting/alertstate.py).

`path` is the prefix Prometheus's `path_prefix` names: path `/prom` serves
`/prom/api/v2/alerts` (path `/`: `/api/v2/alerts`, Prometheus's default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bridge.config.context import CompileContext, canonical
from bridge.config.inputs.kind import Definition, InputKind
from bridge.config.templating import ALERTMANAGER_VARIABLES

ALERTS_ENDPOINT = "/api/v2/alerts"
# Alertmanager's `resolve_timeout` default: how long an alert posted without endsAt stays
# firing without a fresh post (Prometheus always sends endsAt; other clients may not).
DEFAULT_RESOLVE_TIMEOUT = 300.0


@dataclass(frozen=True)
class PrometheusInput:
    name: str
    prefix: str  # the configured `path`
    path: str  # the endpoint served: prefix + /api/v2/alerts
    token: str | None = field(repr=False)
    max_body_bytes: int
    resolve_timeout: float = DEFAULT_RESOLVE_TIMEOUT
    token_header: None = None  # Prometheus sends its credentials as Authorization: Bearer
    type: Literal["prometheus"] = "prometheus"
    definition: str = field(default="", repr=False)

    def secrets(self) -> tuple[str, ...]:
        return (self.token,) if self.token else ()


def endpoint(prefix: str) -> str:
    return prefix.rstrip("/") + ALERTS_ENDPOINT


def compile_prometheus(ctx: CompileContext, d: Definition) -> PrometheusInput:
    spec, where = d.spec, d.where
    max_body = spec.get("max_body_bytes", d.server_max_body)
    prefix = str(spec.get("path", "/"))
    return PrometheusInput(
        name=d.name,
        prefix=prefix,
        path=endpoint(prefix),
        token=ctx.auth_token(where, spec, "token"),
        max_body_bytes=max_body if isinstance(max_body, int) else d.server_max_body,
        resolve_timeout=ctx.duration(
            (*where, "resolve_timeout"), spec.get("resolve_timeout"), DEFAULT_RESOLVE_TIMEOUT
        ),
        definition=canonical(spec),
    )


PROMETHEUS = InputKind(
    type="prometheus",
    compile=compile_prometheus,
    routed=True,
    # Its events carry Alertmanager's variables (render.template_context), so the bundled
    # alertmanager templates, and an operator's, render them; the default title is the one
    # every kind without its own uses, as the alertmanager kind does.
    variables=ALERTMANAGER_VARIABLES,
    default_body="alertmanager",
    route=endpoint,
    # Not repeats_itself: Prometheus posts every active alert again and again, and leaves it to
    # Alertmanager (here: the rules' repeat_interval) to decide what is sent again.
)
