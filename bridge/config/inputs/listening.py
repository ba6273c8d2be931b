"""How a DingTalk input listens: `listen: http` (DingTalk posts to our `path`, the default) or
`listen: stream` (the bridge opens DingTalk's Stream connection itself with the app's AppKey and
AppSecret: no public URL needed). Shared by the `dingtalk_robot` and `dingtalk_callback` kinds.

One connection serves every stream input of one app key (DingTalk pushes each frame to one of
an app's connections at random, so two connections of one process would split the traffic),
so inputs that share an app key must agree on its secret and API base, and an app key takes at
most one input of each kind (robot messages, events).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bridge.config.context import CompileContext
from bridge.config.yamlsource import PathKey

DEFAULT_API_BASE = "https://api.dingtalk.com"
Listen = Literal["http", "stream"]


@dataclass(frozen=True)
class StreamApp:
    """The app whose Stream connection an input listens on."""

    app_key: str
    app_secret: str = field(repr=False)
    api_base: str = DEFAULT_API_BASE  # where connections/open is (tests: the simulator)


def listen_of(spec: Mapping[str, Any]) -> Listen:
    return "stream" if spec.get("listen") == "stream" else "http"


def compile_stream_app(
    ctx: CompileContext, where: PathKey, spec: dict[str, Any], http_only: tuple[str, ...]
) -> StreamApp | None:
    """The app of a `listen: stream` input (None for `listen: http`), with every key that does
    not go with its way of listening reported: `path` and `http_only` belong to HTTP,
    `app_key` and `api_base` to Stream. (The schema requires `path` of one, `app_key` of the
    other.)"""
    if listen_of(spec) == "http":
        for key in ("app_key", "api_base"):
            if key in spec:
                ctx.problem((*where, key), f"{key} is for listen: stream", "add listen: stream")
        return None
    for key in ("path", *http_only):
        for given in (key, f"{key}_file"):
            if given in spec:
                ctx.problem(
                    (*where, given),
                    f"a listen: stream input takes no {given}",
                    "DingTalk sends over the app's Stream connection: remove it",
                )
    app_key = spec.get("app_key")
    secret = ctx.secret(where, spec, "app_secret", required=True) or ""
    api_base = spec.get("api_base", DEFAULT_API_BASE)
    return StreamApp(
        app_key=app_key if isinstance(app_key, str) else "",
        app_secret=secret,
        api_base=str(api_base).rstrip("/"),
    )


def check_shared_apps(ctx: CompileContext, apps: Mapping[str, tuple[str, StreamApp]]) -> None:
    """`apps`: input name -> (its kind, its app). Inputs of one app key share one connection:
    the same secret and API base, and one input per kind."""
    first: dict[str, tuple[str, StreamApp]] = {}  # app key -> (input, app)
    taken: dict[tuple[str, str], str] = {}  # (app key, kind) -> input
    for name, (kind, app) in apps.items():
        where = ("inputs", name)
        if not app.app_key:
            continue
        other = taken.setdefault((app.app_key, kind), name)
        if other != name:
            ctx.problem(
                (*where, "app_key"),
                f'app key {app.app_key} already has a {kind} input listening on Stream: "{other}"',
                "one input per kind and app: DingTalk sends each message to one connection",
            )
        seen_name, seen = first.setdefault(app.app_key, (name, app))
        if seen_name == name:
            continue
        if seen.app_secret != app.app_secret:
            ctx.problem(
                (*where, "app_secret"),
                f'app key {app.app_key} has another app_secret in input "{seen_name}"',
                "inputs of one app share its Stream connection",
            )
        if seen.api_base != app.api_base:
            ctx.problem(
                (*where, "api_base"),
                f'app key {app.app_key} has another api_base in input "{seen_name}"',
            )
