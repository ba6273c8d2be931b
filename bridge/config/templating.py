"""The Jinja environment every template runs in, and the filters operators need.

Sandboxed (no attribute access to Python internals, no unsafe calls) and StrictUndefined (a typo
in a variable is an error that `check` or the fallback path catches, never an empty string sent
at 3 a.m.). Templates come from the operator's config; alert payload text is only ever *data*
passed into a template, never compiled as one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from jinja2 import meta, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.filters import make_attrgetter
from jinja2.runtime import Macro
from jinja2.sandbox import SandboxedEnvironment

from bridge import locales
from bridge.config import template_bounds as tb
from bridge.config.resources import data_dir
from bridge.config.template_bounds import DEFAULT_LIMITS, RenderLimits, TemplateLimitError
from bridge.locales import DEFAULT_LOCALE, Locale, translate

__all__ = ["DEFAULT_LIMITS", "RenderLimits", "TemplateLimitError", "make_environment"]

# Markdown characters that change rendering in DingTalk's markdown subset.
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]()#>!|~"})


def make_environment(
    search_dirs: Iterable[Path],
    tz: ZoneInfo,
    limits: RenderLimits = DEFAULT_LIMITS,
    locale: Locale = DEFAULT_LOCALE,
) -> SandboxedEnvironment:
    """A fresh sandbox that loads files from `search_dirs`, then from the bundled templates and
    presets,
    whose words (`_()`) and durations are in `locale`."""
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader([str(d) for d in search_dirs])]
    loaders.append(jinja2.FileSystemLoader(str(data_dir("templates"))))
    # The presets' bodies, as "<preset>/message.md.j2" (bridge/config/presets.py).
    loaders.append(jinja2.FileSystemLoader(str(data_dir("sources"))))
    env = BoundedSandbox(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.limits = limits
    env.filters.update(_filters(tz, locale))
    env.filters = {name: _bounded_filter(name, f, env) for name, f in env.filters.items()}
    env.globals["lipsum"] = tb.bounded_lipsum
    env.globals["_"] = functools.partial(_translated, locale)
    env.globals["locale"] = locale
    return env


def _translated(locale: Locale, text: Any, **values: Any) -> str:
    """`_("Started %(time)s", time=...)`: the words in the config's locale (bridge/locales.py),
    the values put in by name. Counted like a filter's result."""
    tb.tick()
    words = translate(locale, str(text), **values)
    return str(tb.made(words, "_()"))


# -- bounds (see bridge.template_bounds) -------------------------------------------------------


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with each for loop ticking and `~` joining through the bounds."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        # `for x in environment.ticking(<iterable>)` (Jinja allows no custom node types).
        ticking = nodes.EnvironmentAttribute("ticking", lineno=node.iter.lineno)
        if not _is_ticking(node.iter):
            node.iter = nodes.Call(ticking, [node.iter], [], None, None, lineno=node.iter.lineno)
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        try:  # a constant (`'a' ~ 'b'`) is folded while compiling, as Jinja does
            self.write(repr(node.as_const(frame.eval_ctx)))
            return
        except nodes.Impossible:
            pass
        self.write("environment.concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _is_ticking(node: nodes.Node) -> bool:
    return (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.EnvironmentAttribute)
        and node.node.name == "ticking"
    )


class BoundedTemplate(jinja2.Template):
    """A template whose render is bounded in time, output and memory (TemplateLimitError)."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        env = self.environment
        limits = getattr(env, "limits", DEFAULT_LIMITS)
        with tb.render_budget(limits) as budget:
            context = self.new_context(dict(*args, **kwargs))
            try:
                out: list[str] = []
                counted = 0  # chunks of `out` already counted against the output bound
                chars = 0
                room = limits.output_bytes - budget.output
                for chunk in self.root_render_func(context):
                    out.append(chunk)
                    chars += len(chunk)
                    if chars * 4 > room:  # could be over (4 bytes a character at most): count
                        budget.emit("".join(out[counted:]))
                        counted, chars = len(out), 0
                        room = limits.output_bytes - budget.output
                    else:
                        budget.tick()
                budget.emit("".join(out[counted:]))
                return "".join(out)
            except Exception:
                env.handle_exception()


_REFERENCE_FILTERS = frozenset(
    # Return a part of their input or a number: nothing new to account for.
    {"first", "last", "attr", "default", "d", "length", "count", "random", "abs"}
)
_SHAPE_FILTERS = frozenset(
    # Rearrange their input without turning it into text: no walk of the input first.
    {"list", "batch", "slice", "reverse", "items", "int", "float", "round", "map", "select"}
    | {"reject", "selectattr", "rejectattr"}
)


class BoundedSandbox(SandboxedEnvironment):
    """The sandbox, plus the bounds of bridge.config.template_bounds on every operation that can
    take long or make a large value."""

    code_generator_class = _BoundedCodeGenerator
    template_class = BoundedTemplate
    intercepted_binops = frozenset({"*", "**", "%", "+"})
    limits: RenderLimits = DEFAULT_LIMITS

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        tb.tick()
        tb.require(tb.binop_size(operator, left, right), f"the operator {operator}")
        return tb.made(
            super().call_binop(context, operator, left, right), f"the operator {operator}"
        )

    def call(
        __self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any
    ) -> Any:
        tb.tick()
        name = getattr(__obj, "__name__", "a call")
        if tb.is_builtin_method(__obj):
            owner = getattr(__obj, "__self__", None)
            if name == "join" and isinstance(owner, str) and len(args) == 1 and not kwargs:
                return tb.joined(args[0], owner)
            tb.require(tb.method_size(__obj, args, kwargs), f"{name}()")
        result = SandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs)
        grown = tb.grows_container(__obj) if tb.is_builtin_method(__obj) else None
        if grown is not None:  # append/extend/update: the container it grew
            tb.require(tb.shallow_size(grown), f"{name}()")
            return result
        if isinstance(__obj, Macro) or isinstance(result, str | bytes):
            return tb.made(result, f"{name}()")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        formatter = super().wrap_str_format(value)
        if formatter is None:
            return None
        owner = str(value.__self__)
        is_map = value.__name__ == "format_map"

        def bounded(*args: Any, **kwargs: Any) -> str:
            values = args[0] if is_map and args and isinstance(args[0], Mapping) else kwargs
            positional = () if is_map else args
            tb.require(tb.format_size(owner, positional, values), "str.format")
            return str(tb.made(formatter(*args, **kwargs), "str.format"))

        return functools.update_wrapper(bounded, formatter)

    def concat(self, parts: Iterable[Any]) -> str:
        return tb.joined(parts)

    @staticmethod
    def ticking(iterable: Iterable[Any]) -> Iterable[Any]:
        return tb.ticking(iterable)


def _finalize(value: Any) -> Any:
    """Every `{{ value }}` before it becomes text: a container whose text would exceed the
    output bound is refused before str() builds it."""
    if not isinstance(value, str):
        budget = tb.active()
        limit = (budget.limits if budget else DEFAULT_LIMITS).output_bytes
        size = tb.deep_size(value, limit + 1)
        if size > limit:
            raise TemplateLimitError("output", f"a value of about {size} bytes would be output")
    return value


_ESTIMATED = frozenset(
    {"center", "indent", "wordwrap", "replace", "format", "tojson", "batch", "slice", "kv"}
    | {"localtime", "urlencode", "md_escape", "upper", "lower", "title", "capitalize", "escape"}
)


def _estimate(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], env: Any) -> int:
    """An upper estimate of what filter `name` makes of `args` (its value first), for the
    filters that can make much more than they are given; 0 for the others."""

    def arg(i: int, key: str, default: Any) -> Any:
        return args[i] if len(args) > i else kwargs.get(key, default)

    value = args[0] if args else ""
    size = tb.deep_size(value)
    if name == "center":
        return size + tb._as_width(arg(1, "width", 80))
    if name == "indent":
        width = arg(1, "width", 4)
        w = len(width) if isinstance(width, str) else tb._as_width(width)
        return size + (str(value).count("\n") + 1) * w
    if name == "wordwrap":
        width = max(tb._as_width(arg(1, "width", 79)), 1)
        wrap = arg(3, "wrapstring", None)
        return size + (size // width + 1) * len(str(wrap) if wrap is not None else "\n")
    if name == "replace":
        old, new, count = arg(1, "old", ""), arg(2, "new", ""), arg(3, "count", None)
        return tb._replace_size(str(value), str(old), str(new), -1 if count is None else count)
    if name == "format":
        return tb.percent_size(str(value), args[1:] or dict(kwargs))
    if name == "tojson":
        indent = arg(1, "indent", None)
        width = len(indent) if isinstance(indent, str) else tb._as_width(indent)
        if width > 16:
            raise TemplateLimitError("size", f"tojson(indent={width}) is refused (at most 16)")
        return size * 6 * (1 + width)
    if name in ("batch", "slice"):
        return 8 * tb._as_width(arg(1, "linecount" if name == "batch" else "slices", 0))
    if name == "kv":
        sep = arg(1, "sep", ", ")
        return size + len(str(sep)) * (len(value) if isinstance(value, Mapping) else 1)
    if name == "localtime":
        fmt = str(arg(1, "fmt", ""))
        return len(fmt) + fmt.count("%") * 32
    if name in ("urlencode", "md_escape", "upper", "lower", "title", "capitalize", "escape"):
        return size * 3
    return 0


def _bounded_filter(name: str, f: Callable[..., Any], env: Any) -> Callable[..., Any]:
    """`f` checking the deadline, refusing oversized results before computing them, and
    accounting for what it makes. Pass-context markers are kept, so Jinja still passes them."""
    passes = getattr(f, "jinja_pass_arg", None)
    skip = 1 if passes is not None else 0  # the context, eval context or environment
    # The value a filter turns into text is measured first (its parameters are covered by
    # _estimate where they can make the result larger: separators, widths, replacements).
    estimated = name in _ESTIMATED
    walk = not estimated and name not in _REFERENCE_FILTERS and name not in _SHAPE_FILTERS

    @functools.wraps(f)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        tb.tick()
        own = args[skip:]
        if estimated:
            tb.require(_estimate(name, own, kwargs, env), f"the filter {name}")
        elif walk and own:
            value = own[0]
            if not isinstance(value, str | int | float | bool) and value is not None:
                tb.require(tb.deep_size(value), f"the filter {name}")
        if name == "join":
            items = list(own[0]) if own else []
            sep = str(own[1] if len(own) > 1 else kwargs.get("d", ""))
            attribute = own[2] if len(own) > 2 else kwargs.get("attribute")
            if attribute is not None:
                items = list(map(make_attrgetter(env, attribute), items))
            return tb.joined(items, sep)
        result = f(*args, **kwargs)
        return result if name in _REFERENCE_FILTERS else tb.made(result, f"the filter {name}")

    return bounded


def undeclared_variables(env: SandboxedEnvironment, source: str) -> set[str]:
    """Names a template reads from its context (raises jinja2.TemplateSyntaxError)."""
    ast = env.parse(source)
    names = set(meta.find_undeclared_variables(ast)) - set(env.globals)
    return names - _scoped_loop_names(env, ast)


def _scoped_loop_names(env: SandboxedEnvironment, ast: nodes.Template) -> set[str]:
    """The loop variables that `{% block x scoped %}` blocks read from the loops around them,
    in this template or, for the blocks it overrides, in the one it extends.

    Jinja's analysis treats a block as a function of its own and reports those names as
    undeclared, though `scoped` hands them in: the bundled templates' blocks (`alert_values`,
    `alert_links` read `a`) would be refused when their text, or a template extending them, is
    written inline or tried in the console's playground."""
    bound = _scoped_bindings(ast, frozenset())
    for extends in ast.find_all(nodes.Extends):
        parent = extends.template
        if isinstance(parent, nodes.Const) and isinstance(parent.value, str) and env.loader:
            try:
                text = env.loader.get_source(env, parent.value)[0]
                bound.update(_scoped_bindings(env.parse(text), frozenset()))
            except (jinja2.TemplateError, OSError):
                pass  # a missing or broken parent is reported where it is compiled
    return {
        name
        for block in ast.find_all(nodes.Block)
        for name in bound.get(block.name, frozenset())
        if any(n.name == name and n.ctx == "load" for n in block.find_all(nodes.Name))
    }


def _scoped_bindings(node: nodes.Node, loops: frozenset[str]) -> dict[str, frozenset[str]]:
    """Per scoped block: the names the loops around it bind."""
    found: dict[str, frozenset[str]] = {}
    for child in node.iter_child_nodes():
        inner = loops
        if isinstance(child, nodes.For):
            target = child.target  # a name or a tuple of them (find_all skips the node itself)
            inner = loops | {
                n.name for n in [target, *target.find_all(nodes.Name)] if isinstance(n, nodes.Name)
            }
        elif isinstance(child, nodes.Block) and child.scoped and loops:
            found[child.name] = found.get(child.name, frozenset()) | loops
        found.update(_scoped_bindings(child, inner))
    return found


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


def _filters(tz: ZoneInfo, locale: Locale) -> Mapping[str, Callable[..., Any]]:
    def localtime(value: Any, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        """A timestamp (datetime or RFC 3339 string) in the configured zone."""
        when = _as_datetime(value)
        if when is None or when.year <= 1:  # Alertmanager's "0001-01-01T00:00:00Z" means unset
            return ""
        return when.astimezone(tz).strftime(fmt)

    @jinja2.pass_context
    def since(context: jinja2.runtime.Context, value: Any) -> str:
        """How long ago `value` was, relative to the render's `now` ("2h 5m", "2 小时 5 分")."""
        when = _as_datetime(value)
        now = context.get("now")
        if when is None or not isinstance(now, datetime) or when.year <= 1:
            return ""
        return locales.duration(locale, (now - when).total_seconds())

    def duration(value: Any) -> str:
        """Seconds or a timedelta as "3m 20s" ("3 分 20 秒")."""
        seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
        return locales.duration(locale, seconds)

    def lasted(alert: Mapping[str, Any]) -> str:
        """How long a resolved alert (a view in `alerts`) fired, from its startsAt to its
        endsAt; "" when either is unknown. (Its `duration` field says the same in English.)"""
        start, end = _as_datetime(alert.get("startsAt")), _as_datetime(alert.get("endsAt"))
        if start is None or end is None or start.year <= 1 or end.year <= 1:
            return ""
        return locales.duration(locale, (end - start).total_seconds())

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
        "lasted": lasted,
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
        "actions",  # the one-tap links of the rule's `actions` (pipeline/actionlinks.py)
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
# Grafana's webhook is Alertmanager's notification plus these (per alert it adds values,
# valueString and links, which templates read on each alert: see bridge/inputs/grafana.py).
GRAFANA_VARIABLES = ALERTMANAGER_VARIABLES | {"title", "state", "message", "orgId"}
# Templates on a webhook input (labels, status, fingerprint) see the request body and the time.
WEBHOOK_INPUT_VARIABLES = frozenset({"body", "now"})
# Templates on a file input's labels see the line (or multiline record), the file, and the
# pattern's named groups (added per pattern), all as strings.
FILE_LINE_VARIABLES = frozenset({"line", "path", "filename", "groups"})
