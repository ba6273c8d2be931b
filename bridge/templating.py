"""The Jinja environment every template runs in, and the filters operators need.

Sandboxed (no attribute access to Python internals, no unsafe calls) and StrictUndefined (a typo
in a variable is an error that `check` or the fallback path catches, never an empty string sent
at 3 a.m.). Templates come from the operator's config; alert payload text is only ever *data*
passed into a template, never compiled as one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from bridge.durations import format_duration
from bridge.resources import data_dir

# Markdown characters that change rendering in DingTalk's markdown subset.
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]()#>!|~"})


def make_environment(search_dirs: Iterable[Path], tz: ZoneInfo) -> SandboxedEnvironment:
    """A fresh sandbox that loads files from `search_dirs`, then from the bundled templates."""
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader([str(d) for d in search_dirs])]
    loaders.append(jinja2.FileSystemLoader(str(data_dir("templates"))))
    env = SandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(_filters(tz))
    return env


def undeclared_variables(env: SandboxedEnvironment, source: str) -> set[str]:
    """Names a template reads from its context (raises jinja2.TemplateSyntaxError)."""
    return set(meta.find_undeclared_variables(env.parse(source))) - set(env.globals)


def referenced_templates(env: SandboxedEnvironment, source: str) -> set[str]:
    """Files a template includes, imports or extends (when the names are literal)."""
    return {n for n in meta.find_referenced_templates(env.parse(source)) if n is not None}


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def truncate_bytes(text: str, limit: int, marker: str = "…") -> str:
    """At most `limit` UTF-8 bytes, cut at a character boundary, `marker` appended when cut."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    room = max(0, limit - len(marker.encode("utf-8")))
    return raw[:room].decode("utf-8", errors="ignore") + marker


def _filters(tz: ZoneInfo) -> Mapping[str, Callable[..., Any]]:
    def localtime(value: Any, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        """A timestamp (datetime or RFC 3339 string) in the configured zone."""
        when = _as_datetime(value)
        if when is None or when.year <= 1:  # Alertmanager's "0001-01-01T00:00:00Z" means unset
            return ""
        return when.astimezone(tz).strftime(fmt)

    @jinja2.pass_context
    def since(context: jinja2.runtime.Context, value: Any) -> str:
        """How long ago `value` was, relative to the render's `now` ("2h 5m")."""
        when = _as_datetime(value)
        now = context.get("now")
        if when is None or not isinstance(now, datetime) or when.year <= 1:
            return ""
        return format_duration((now - when).total_seconds())

    def duration(value: Any) -> str:
        """Seconds or a timedelta as "3m 20s"."""
        seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
        return format_duration(seconds)

    def md_escape(value: Any) -> str:
        """Escape markdown syntax in payload text so it shows literally."""
        return str(value).translate(_MD_SPECIAL)

    def kv(value: Mapping[str, Any], sep: str = ", ", exclude: Iterable[str] = ()) -> str:
        """A label set as "k=v, k2=v2", sorted, without the `exclude`d names."""
        skip = set(exclude)
        return sep.join(f"{k}={v}" for k, v in sorted(value.items()) if k not in skip)

    return {
        "localtime": localtime,
        "since": since,
        "duration": duration,
        "truncate_bytes": truncate_bytes,
        "md_escape": md_escape,
        "kv": kv,
    }


# Variables every rule template can read (see bridge.render.template_context, which must build
# exactly these; a test holds the two together).
COMMON_VARIABLES = frozenset(
    {
        "status",
        "labels",
        "annotations",
        "fingerprint",
        "short_id",
        "alerts",
        "firing",
        "resolved",
        "payload",
        "body",
        "input",
        "kind",
        "received_at",
        "now",
        "rule",
    }
)
# Only events from Alertmanager inputs carry these (the notification's top-level fields).
ALERTMANAGER_VARIABLES = frozenset(
    {
        "receiver",
        "externalURL",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "groupKey",
        "truncatedAlerts",
    }
)
# Templates on a webhook input (labels, status, fingerprint) see the request body and the time.
WEBHOOK_INPUT_VARIABLES = frozenset({"body", "now"})
# Templates on a file input's labels see the line (or multiline record), the file, and the
# pattern's named groups (added per pattern), all as strings.
FILE_LINE_VARIABLES = frozenset({"line", "path", "filename", "groups"})
