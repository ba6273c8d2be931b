"""The `grafana` kind: Grafana unified alerting's webhook contact point (payload version "1").

It compiles as the alertmanager kind does (`path`, `token`, `max_body_bytes`, `split`), without
a `dedup_window`: Grafana's HA instances each evaluate the rules, so their copies of one
notification differ (start times, values) and could not be told apart from news anyway.
"""

from __future__ import annotations

from bridge.config.inputs.http_json import compile_http_json
from bridge.config.inputs.kind import InputKind
from bridge.config.templating import GRAFANA_VARIABLES

GRAFANA = InputKind(
    type="grafana",
    compile=compile_http_json,
    routed=True,
    variables=GRAFANA_VARIABLES,
    default_body="grafana",
    # Grafana's notification policies decide repeats (their repeat_interval), as Alertmanager's
    # routes do: a rule fed only by it passes every notification on unless told otherwise.
    repeats_itself=True,
)
