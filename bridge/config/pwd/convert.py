"""prometheus-webhook-dingtalk's config (v2.x) as a dingtalk-bridge config: a pure conversion.

The old bridge (github.com/timonwong/prometheus-webhook-dingtalk) serves every target of its
`targets:` at POST /dingtalk/<target>/send, renders the Alertmanager notification with its Go
templates into a markdown message, and posts it to the target's robot `url`, signed when the
target has a `secret`, with the target's `mention` (mobiles, all). Its listen address comes from
the command line (`--web.listen-address`, default ":8060").

The equivalent here is, per target, an `alertmanager` input at the same path, a robot target with
the same webhook and secret, and a rule from the one to the other carrying the mentions: the URLs
Alertmanager posts to stay as they are. Messages use the bundled markdown template (Go templates
are not translated: see gotemplates.py), and what used the operator's own templates is listed
for porting.

Everything here is a function of its arguments: the command (cli/importpwd.py) reads the files,
resolves the template globs and writes the results. Problems that still leave a working config
(an unknown key, a target without a url) are warnings; only a document with nothing to convert
is an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from bridge.config.pwd import gotemplates
from bridge.listen import parse_listen

OLD_DEFAULT_LISTEN = ":8060"
MIN_TIMEOUT, MAX_TIMEOUT = 0.001, 300.0  # seconds: what a call to DingTalk may sensibly wait
_TOP_KEYS = ("no_builtin_template", "template", "templates", "default_message", "timeout")
_TARGET_KEYS = ("url", "secret", "mention", "message")
_OLD_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9\-_]*$")  # what the old bridge accepts
_NEW_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # what the schema accepts
# Query parameters whose values the old bridge itself hides when it prints a URL: secrets.
SECRET_QUERY_KEY = re.compile(r"(?i)(secret|token|key|nonce|digest)")
_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


class ConversionError(ValueError):
    """The document has nothing that can become a dingtalk-bridge config."""


@dataclass(frozen=True)
class TemplateFile:
    """One file an old `templates:` glob matched, and its text."""

    path: str
    text: str


@dataclass(frozen=True)
class TemplateGlob:
    """One entry of the old `templates:` (as written there) and the files it matched."""

    pattern: str
    files: tuple[TemplateFile, ...]


@dataclass(frozen=True)
class Robot:
    """One old target, as a robot target, its input and its rule (all named `name`)."""

    name: str
    webhook: str = field(repr=False)
    secret: str | None = field(repr=False)
    timeout: str | None
    mobiles: tuple[str, ...]
    mention_all: bool
    look: gotemplates.Look
    port: tuple[str, ...]  # what of its old message to port, one line each

    @property
    def path(self) -> str:
        return f"/dingtalk/{self.name}/send"


@dataclass(frozen=True)
class Converted:
    """The result: the new config's parts, the secrets moved to the environment (empty unless
    asked for), what to port, and warnings."""

    listen: str
    listen_given: bool
    robots: tuple[Robot, ...]
    env: Mapping[str, str] = field(repr=False)
    port: tuple[str, ...]
    warnings: tuple[str, ...]

    def config(self) -> dict[str, Any]:
        """The new config as data (what the written YAML holds, without its comments)."""
        targets: dict[str, Any] = {}
        inputs: dict[str, Any] = {}
        rules: list[dict[str, Any]] = []
        for robot in self.robots:
            target: dict[str, Any] = {"type": "robot", "webhook": robot.webhook}
            if robot.secret is not None:
                target["secret"] = robot.secret
            if robot.timeout is not None:
                target["timeout"] = robot.timeout
            targets[robot.name] = target
            inputs[robot.name] = {"type": "alertmanager", "path": robot.path}
            rule: dict[str, Any] = {
                "name": robot.name,
                "inputs": [robot.name],
                "targets": [robot.name],
                "msgtype": "markdown",
            }
            mention: dict[str, Any] = {}
            if robot.mobiles:
                mention["mobiles"] = list(robot.mobiles)
            if robot.mention_all:
                mention["all"] = True
            if mention:
                rule["mention"] = mention
            rules.append(rule)
        return {
            "server": {"listen": self.listen},
            "targets": targets,
            "inputs": inputs,
            "rules": rules,
        }


def template_patterns(old: Any) -> list[str]:
    """The template globs the old config loads (`templates:`, then the older `template:`), in
    its order, for the command to resolve before converting."""
    if not isinstance(old, dict):
        return []
    found = [str(p) for p in old.get("templates") or [] if isinstance(p, str | int)]
    if isinstance(old.get("templates"), str):  # a single path where a list belongs
        found = [old["templates"]]
    if isinstance(old.get("template"), str) and old["template"]:
        found.append(old["template"])
    return found


def go_listen(address: str) -> str:
    """A Go listen address (":8060" means every interface) as `server.listen` writes it;
    raises ValueError when it is not host:port."""
    host, sep, port = address.rpartition(":")
    listen = f"0.0.0.0:{port}" if sep and host == "" else address
    parse_listen(listen)
    return listen


def go_duration(value: Any) -> float:
    """Seconds in a Go duration ("5s", "1m30s", "500ms"); raises ValueError."""
    text = str(value).strip() if isinstance(value, str) else ""
    if text == "0":
        return 0.0
    if not text or _GO_DURATION.sub("", text):
        raise ValueError(f"{value!r} is not a Go duration such as 5s or 1m30s")
    return sum(float(n) * _GO_UNITS[unit] for n, unit in _GO_DURATION.findall(text))


def as_duration(seconds: float) -> str:
    """Seconds as the schema writes a duration: whole seconds or milliseconds."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def env_name(target: str, what: str, taken: set[str]) -> str:
    """DINGTALK_<TARGET>_<WHAT>, upper case, unique among `taken` (which it joins)."""
    base = re.sub(r"[^A-Z0-9]+", "_", f"DINGTALK_{target}_{what}".upper()).strip("_")
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def convert(
    old: Any,
    templates: Sequence[TemplateGlob] = (),
    listen: str | None = None,
    secrets_to_env: bool = False,
) -> Converted:
    """The dingtalk-bridge config equivalent to the old config `old` (parsed YAML).

    `templates`: what the old `templates:` globs matched (template_patterns()); `listen`: the old
    `--web.listen-address`, if known; `secrets_to_env`: write `${DINGTALK_...}` references in
    place of access tokens and signing secrets, whose values go to Converted.env.
    Raises ConversionError when there is no target to convert, ValueError for a bad `listen`.
    """
    if not isinstance(old, dict):
        raise ConversionError("not a prometheus-webhook-dingtalk config: expected a mapping")
    warnings: list[str] = []
    _unknown(old, (*_TOP_KEYS, "targets"), "", warnings)
    custom: dict[str, frozenset[str]] = {}
    for glob in templates:
        if not glob.files:
            warnings.append(f"templates: {glob.pattern}: no file found; port it by hand")
        for file in glob.files:
            custom.update(gotemplates.definitions(file.text))
    builtin = old.get("no_builtin_template") is not True
    default_message = _message(old.get("default_message"), "default_message", warnings)
    timeout = _timeout(old.get("timeout"), warnings)
    env: dict[str, str] = {}
    robots: list[Robot] = []
    targets = old.get("targets")
    if not isinstance(targets, dict) or not targets:
        raise ConversionError("the config has no targets: nothing to convert")
    for name, spec in targets.items():
        robot = _robot(str(name), spec, default_message, custom, builtin, timeout, warnings)
        if robot is not None and secrets_to_env:
            robot = _to_env(robot, env)
        if robot is not None:
            robots.append(robot)
    if not robots:
        raise ConversionError("no target could be converted (see the warnings)")
    return Converted(
        listen=go_listen(listen or OLD_DEFAULT_LISTEN),
        listen_given=listen is not None,
        robots=tuple(robots),
        env=env,
        port=_template_port(templates, custom, builtin, robots),
        warnings=tuple(warnings),
    )


def _unknown(spec: dict[str, Any], known: Sequence[str], where: str, warnings: list[str]) -> None:
    for key in spec:
        if key not in known:
            warnings.append(f"{where}{key}: unknown key, ignored (known: {', '.join(known)})")


def _message(raw: Any, where: str, warnings: list[str]) -> tuple[str, str] | None:
    """A `message:`/`default_message:` as (title, text); a part it leaves out is the built-in
    default's, as the old bridge fills it in."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        warnings.append(f"{where}: not a mapping of title and text, ignored")
        return None
    _unknown(raw, ("title", "text"), f"{where}.", warnings)
    title, text = raw.get("title"), raw.get("text")
    return (
        gotemplates.DEFAULT_TITLE if title is None else str(title),
        gotemplates.DEFAULT_TEXT if text is None else str(text),
    )


def _timeout(raw: Any, warnings: list[str]) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        warnings.append(
            f"timeout: {raw} is a bare number (nanoseconds to the old bridge), not a duration"
            " such as 5s; the default 5s applies"
        )
        return None
    try:
        seconds = go_duration(raw)
    except ValueError as exc:
        warnings.append(f"timeout: {exc}; the default 5s applies")
        return None
    if not MIN_TIMEOUT <= seconds <= MAX_TIMEOUT:
        warnings.append(f"timeout: {raw} is not between 1ms and 5m; the default 5s applies")
        return None
    return as_duration(seconds)


def _robot(
    name: str,
    spec: Any,
    default_message: tuple[str, str] | None,
    custom: Mapping[str, frozenset[str]],
    builtin: bool,
    timeout: str | None,
    warnings: list[str],
) -> Robot | None:
    where = f"targets.{name}"
    if not isinstance(spec, dict):
        warnings.append(f"{where}: not a mapping, skipped")
        return None
    if not _NEW_NAME.match(name):
        warnings.append(f"{where}: the name cannot be an input or target name here, skipped")
        return None
    if not _OLD_NAME.match(name):
        warnings.append(f"{where}: the old bridge refuses this name; converted anyway")
    _unknown(spec, _TARGET_KEYS, f"{where}.", warnings)
    url = spec.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        warnings.append(f"{where}: no http(s) url, skipped (the old bridge refuses it too)")
        return None
    if "access_token=" not in url and "${" not in url:
        warnings.append(f"{where}.url: no access_token parameter; `check` will refuse it")
    secret = spec.get("secret")
    mention = spec.get("mention")
    if mention is not None and not isinstance(mention, dict):
        warnings.append(f"{where}.mention: not a mapping, ignored")
    mention = mention if isinstance(mention, dict) else {}
    _unknown(mention, ("all", "mobiles"), f"{where}.mention.", warnings)
    mobiles = mention.get("mobiles") or []
    if not isinstance(mobiles, list):
        warnings.append(f"{where}.mention.mobiles: not a list, ignored")
        mobiles = []
    message = _message(spec.get("message"), f"{where}.message", warnings)
    title, text = (
        message or default_message or (gotemplates.DEFAULT_TITLE, gotemplates.DEFAULT_TEXT)
    )
    look = gotemplates.classify(title, text, custom, builtin)
    return Robot(
        name=name,
        webhook=url,
        secret=str(secret) if secret not in (None, "") else None,
        timeout=timeout,
        mobiles=tuple(str(m) for m in mobiles if isinstance(m, str | int) and str(m)),
        mention_all=mention.get("all") is True,
        look=look,
        port=_robot_port(look, title, text),
    )


def _robot_port(look: gotemplates.Look, title: str, text: str) -> tuple[str, ...]:
    lines: list[str] = []
    if look.kind == "legacy":
        lines.append("used the built-in legacy look; the bundled template replaces it")
    if look.kind == "inline":
        for part, value in (("title", title), ("text", text)):
            if not gotemplates.is_only_calls(value):
                lines.append(f"message {part} is inline Go template text: {_short(value)}")
    if look.custom:
        lines.append("used your templates " + ", ".join(sorted(look.custom)))
    if look.missing:
        lines.append(
            "called templates no file defines (not found?) " + ", ".join(sorted(look.missing))
        )
    return tuple(lines)


def _short(text: str, most: int = 120) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= most else flat[: most - 1] + "…")


def _template_port(
    templates: Sequence[TemplateGlob],
    custom: Mapping[str, frozenset[str]],
    builtin: bool,
    robots: Sequence[Robot],
) -> tuple[str, ...]:
    """One line per template file: where it is, what it defines, which targets used it."""
    lines: list[str] = []
    if not builtin:
        lines.append("no_builtin_template: true: every old message came from your templates")
    for glob in templates:
        for file in glob.files:
            names = sorted(gotemplates.definitions(file.text))
            users = [r.name for r in robots if r.look.custom & set(names)]
            overrides = [n for n in names if n in gotemplates.BUILTIN_CALLS]
            line = f"{file.path}: defines {', '.join(names) or 'nothing'}"
            if overrides:
                line += f" (replacing the built-in {', '.join(overrides)})"
            line += f"; used by {', '.join(users)}" if users else "; used by no target"
            lines.append(line)
    return tuple(lines)


def _to_env(robot: Robot, env: dict[str, str]) -> Robot:
    """`robot` with its URL's secret query values and its signing secret read from the
    environment: ${DINGTALK_<TARGET>_ACCESS_TOKEN}, ${DINGTALK_<TARGET>_SECRET}. Values that
    already read the environment (${...}) stay as they are."""
    taken = set(env)
    base, sep, query = robot.webhook.partition("?")
    params = []
    for param in query.split("&") if sep else []:
        key, eq, value = param.partition("=")
        if eq and value and "${" not in value and SECRET_QUERY_KEY.search(key):
            var = env_name(robot.name, key, taken)
            env[var] = value
            value = "${" + var + "}"
        params.append(f"{key}{eq}{value}")
    webhook = base + sep + "&".join(params)
    secret = robot.secret
    if secret is not None and "${" not in secret:
        var = env_name(robot.name, "secret", taken)
        env[var] = secret
        secret = "${" + var + "}"
    return replace(robot, webhook=webhook, secret=secret)
