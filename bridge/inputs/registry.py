"""Every input kind's runtime half, by its `type`: the HTTP router and `render` look kinds up
here. A new kind adds one entry (and its config half one in bridge/config/inputs/registry.py;
tests/test_input_kinds.py checks that both registries and the schema name the same kinds)."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.inputs import alertmanager, callback, chat, file, grafana, prometheus, webhook
from bridge.inputs.kind import InputRuntime

KINDS: Mapping[str, InputRuntime] = {
    k.type: k
    for k in (
        alertmanager.KIND,
        webhook.KIND,
        file.KIND,
        callback.KIND,
        chat.KIND,
        prometheus.KIND,
        grafana.KIND,
    )
}
