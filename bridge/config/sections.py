"""The small top-level sections: server, timezone, state_dir, state, silences, alertmanager."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.alerting import matchers
from bridge.alerting.silences import Silence
from bridge.config import model as m
from bridge.config import nodeid
from bridge.config.context import CompileContext, as_dict, as_list
from bridge.config.yamlsource import PathKey
from bridge.listen import parse_listen
from bridge.locales import DEFAULT_LOCALE, LOCALES, Locale


def compile_server(ctx: CompileContext, spec: dict[str, Any]) -> m.ServerConfig:
    listen = spec.get("listen", m.DEFAULT_LISTEN)
    host, port = "127.0.0.1", 8060
    if isinstance(listen, str):
        try:
            host, port = parse_listen(listen)
        except ValueError as exc:
            ctx.problem(("server", "listen"), str(exc), 'e.g. "127.0.0.1:8060" or "[::]:8060"')
    max_body = spec.get("max_body_bytes", m.DEFAULT_MAX_BODY)
    threads = spec.get("threads", m.DEFAULT_THREADS)
    limit = spec.get("connection_limit", m.DEFAULT_CONNECTION_LIMIT)
    workers = spec.get("workers", m.DEFAULT_WORKERS)
    background = spec.get("background_worker", False)
    return m.ServerConfig(
        reload_token=ctx.auth_token(("server",), spec, "reload_token"),
        console=compile_console(ctx, spec.get("console")),
        host=host,
        port=port,
        max_body_bytes=max_body if isinstance(max_body, int) else m.DEFAULT_MAX_BODY,
        threads=threads if isinstance(threads, int) else m.DEFAULT_THREADS,
        workers=workers if isinstance(workers, int) else m.DEFAULT_WORKERS,
        background_worker=background is True,
        connection_limit=limit if isinstance(limit, int) else m.DEFAULT_CONNECTION_LIMIT,
        idle_timeout=ctx.duration(
            ("server", "idle_timeout"), spec.get("idle_timeout"), m.DEFAULT_IDLE_TIMEOUT
        ),
    )


def compile_console(ctx: CompileContext, spec: Any) -> m.ConsoleConfig | None:
    """`server.console`, or None (off). The token is its whole protection, so a short or
    missing one is a problem, and so is a path that an input or a built-in endpoint takes."""
    if not isinstance(spec, dict):
        return None
    where = ("server", "console")
    token = ctx.secret(where, spec, "token", required=True) or ""
    viewer = ctx.secret(where, spec, "viewer_token", required=False)
    for key, value in (("token", token), ("viewer_token", viewer)):
        if value and len(value) < m.MIN_CONSOLE_TOKEN:
            source = f"{key}_file" if f"{key}_file" in spec else key
            ctx.problem(
                (*where, source),
                f"{key} is shorter than {m.MIN_CONSOLE_TOKEN} characters",
                "e.g. the output of `openssl rand -hex 24`",
            )
    if token and viewer and token == viewer:
        ctx.problem((*where, "viewer_token"), "viewer_token is the same as token")
    path = spec.get("path", m.DEFAULT_CONSOLE_PATH)
    path = path if isinstance(path, str) else m.DEFAULT_CONSOLE_PATH
    if path.startswith("/-/") or path in ("/-", "/metrics"):
        ctx.problem((*where, "path"), f"{path} is the bridge's own endpoint", "e.g. /console")
    simulator = spec.get("simulator")
    if isinstance(simulator, str) and not re.fullmatch(r"https?://[^/?#\s]+/?", simulator):
        ctx.problem(
            (*where, "simulator"), "simulator is not a base URL", "e.g. http://127.0.0.1:8061"
        )
        simulator = None
    return m.ConsoleConfig(
        path=path,
        token=token,
        viewer_token=viewer,
        read_only=spec.get("read_only") is True,
        session=ctx.duration((*where, "session"), spec.get("session"), m.DEFAULT_CONSOLE_SESSION),
        simulator=simulator.rstrip("/") if isinstance(simulator, str) and simulator else None,
    )


def check_console_path(
    ctx: CompileContext, console: m.ConsoleConfig | None, inputs: Mapping[str, Any]
) -> None:
    """No input may listen on the console's path or under it (the console would hide it)."""
    if console is None:
        return
    for name, spec in inputs.items():
        path = getattr(spec, "path", "")
        if path and (path == console.path or path.startswith(console.path + "/")):
            ctx.problem(
                ("inputs", name, "path"),
                f'path "{path}" is under the console\'s path {console.path}',
                "move the input, or set server.console.path",
            )


def compile_alertmanager(ctx: CompileContext, spec: Any) -> m.AlertmanagerApi | None:
    if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
        return None
    return m.AlertmanagerApi(
        spec["url"].rstrip("/"),
        ctx.duration(("alertmanager", "timeout"), spec.get("timeout"), 5.0),
    )


def compile_state_dir(ctx: CompileContext, value: Any) -> Path:
    """The configured state_dir, else systemd's $STATE_DIRECTORY (its first path, as the
    unit may name several), else the packaged default; relative to the config's directory."""
    if isinstance(value, str) and value:
        path = Path(value)
    else:
        from_systemd = ctx.environ.get("STATE_DIRECTORY", "").split(":")[0]
        path = Path(from_systemd) if from_systemd else m.DEFAULT_STATE_DIR
    return path if path.is_absolute() else ctx.base_dir / path


def compile_node_id(ctx: CompileContext, spec: Any) -> str | None:
    """`state: {node_id}`: the configured node id (None: not configured, the host name)."""
    value = spec.get("node_id") if isinstance(spec, dict) else None
    if not isinstance(value, str):
        return None  # absent, or not a string (the schema has said so)
    wrong = nodeid.problem(value)
    if wrong is not None:
        ctx.problem(
            ("state", "node_id"),
            f"the node id {wrong}",
            'e.g. "web-1", or "${POD_NAME}" from the environment',
        )
        return None
    return value


def compile_claim_lease(ctx: CompileContext, spec: Any, longest_call: float) -> float:
    """`state: {lease}`: seconds a replica holds the rows it claimed (see model's bounds). It
    must outlast the longest call to DingTalk (`longest_call`, a target's timeout) twice over:
    renewed at half its length, a claim then never ends during a call. Without `lease`, the
    default, or that much for targets with long timeouts."""
    floor = 2 * longest_call
    default = min(max(m.DEFAULT_CLAIM_LEASE, floor), m.MAX_CLAIM_LEASE)
    if not isinstance(spec, dict) or spec.get("lease") is None:
        return default
    at = ("state", "lease")
    lease = ctx.duration(at, spec.get("lease"), default)
    if not m.MIN_CLAIM_LEASE <= lease <= m.MAX_CLAIM_LEASE:
        ctx.problem(
            at,
            f"must be between {m.MIN_CLAIM_LEASE:g}s and {m.MAX_CLAIM_LEASE / 60:g}m",
            "a replica renews its claim at half the lease, so it must outlast a call to"
            " DingTalk; a dead replica's rows wait for it to end. The default is"
            f" {m.DEFAULT_CLAIM_LEASE:g}s",
        )
    elif lease < floor:
        ctx.problem(
            at,
            f"must be at least twice the longest target timeout ({floor:g}s)",
            "renewed at half its length, a claim must not end while a call to DingTalk waits",
        )
    return lease


def compile_state(ctx: CompileContext, spec: Any) -> str | None:
    """`state: {url | url_file}`: the PostgreSQL URL (None: no URL, SQLite)."""
    if not isinstance(spec, dict):
        return None  # absent (SQLite), or not a mapping (the schema has said so)
    if "url" not in spec and "url_file" not in spec:
        return None  # only `node_id` or `lease`: SQLite
    url = ctx.secret(("state",), spec, "url", required=True)
    if url is None:
        return None
    if not url.startswith(("postgresql://", "postgres://")):
        key = "url_file" if "url_file" in spec else "url"
        ctx.problem(
            ("state", key),
            "must be a PostgreSQL URL (postgresql://...)",
            "e.g. postgresql://bridge:PASSWORD@db.example:5432/bridge",
        )
        return None
    return url


def compile_timezone(ctx: CompileContext, name: Any, at: PathKey = ("timezone",)) -> ZoneInfo:
    """The zone named at `at` (the top-level `timezone`, or a schedule's)."""
    if name is None:
        return ZoneInfo(m.DEFAULT_TIMEZONE)
    if not isinstance(name, str):
        return ZoneInfo("UTC")  # the schema says "must be a string"
    try:
        if len(name) > 255:  # no zone name is; the file system would refuse the path
            raise ValueError("too long")
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: ZoneInfo opens the name as a file under the zone database, so a region
        # ("America", a directory) or an over-long name fails there, not as "not found".
        shown = name if len(name) <= 60 else name[:60] + "…"
        ctx.problem(at, f'unknown time zone "{shown}"', 'e.g. "Asia/Shanghai", "UTC"')
        return ZoneInfo("UTC")


def compile_locale(name: Any) -> Locale:
    """The schema refused any other value (and listed the ones it takes)."""
    return next((locale for locale in LOCALES if locale == name), DEFAULT_LOCALE)


def compile_silences(ctx: CompileContext, specs: list[Any]) -> tuple[Silence, ...]:
    out = []
    for index, raw in enumerate(specs):
        spec, where = as_dict(raw), ("silences", index)
        parsed = []
        for i, text in enumerate(as_list(spec.get("matchers"))):
            try:
                parsed.append(matchers.parse(str(text)))
            except ValueError as exc:
                ctx.problem((*where, "matchers", i), str(exc))
        span = []
        for key, default in (("starts_at", 0.0), ("ends_at", float("inf"))):
            value = spec.get(key)
            if value is None:
                span.append(default)
                continue
            try:
                when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                ctx.problem(
                    (*where, key), "not an RFC 3339 time", 'e.g. "2026-12-01T08:00:00+08:00"'
                )
                span.append(default)
                continue
            if when.tzinfo is None:
                ctx.problem((*where, key), "the time needs a zone", 'e.g. "+08:00" or "Z"')
            span.append(when.timestamp())
        if len(span) == 2 and span[0] >= span[1]:
            ctx.problem(where, "ends_at is not after starts_at")
        out.append(
            Silence(
                id=f"config-{index}",
                matchers=tuple(parsed),
                starts_at=span[0],
                ends_at=span[1],
                comment=str(spec.get("comment", "")),
                source="config",
            )
        )
    return tuple(out)
