"""Turn a schema-valid document into a `Config`, checking meaning the schema cannot express.

Every check appends to one list of problems instead of stopping: an operator fixing a config wants
to see everything wrong with it at once. The checks are defensive about types because they also
run on documents that failed schema validation (so one bad key does not hide a bad reference).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Collection, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from bridge.alerting import matchers
from bridge.alerting.silences import Silence
from bridge.config import model as m
from bridge.config.aeskey import aes_key_bytes
from bridge.config.schema import did_you_mean, validate
from bridge.config.templating import (
    ALERTMANAGER_VARIABLES,
    COMMON_VARIABLES,
    FILE_LINE_VARIABLES,
    WEBHOOK_INPUT_VARIABLES,
    make_environment,
    referenced_templates,
    undeclared_variables,
)
from bridge.config.yamlsource import Document, PathKey, format_path, load_document
from bridge.durations import MAX_CONFIG_DURATION, parse_duration
from bridge.errors import ConfigError, Problem
from bridge.listen import parse_listen
from bridge.model import Mention, MsgType

# A group that mixes alertnames (so `alertname` is not a common label) is titled by all of them.
DEFAULT_TITLE = (
    "[{{ status | upper }}{% if firing | length > 1 %} ×{{ firing | length }}{% endif %}] "
    "{{ labels.alertname | default((alerts | map(attribute='labels.alertname', default='')"
    " | select | unique | join(', ')) or input) }}"
)
# A log line's title says what it is: its level, where it came from and the start of the line.
FILE_DEFAULT_TITLE = (
    "[{{ (labels.get('level') or labels.get('severity') or 'match') | upper }}] {{ input }}: "
    "{{ annotations.line | truncate_bytes(90) }}"
)
CALLBACK_DEFAULT_TITLE = "[{{ labels.EventType }}] {{ input }}"
RESERVED_PREFIX = "/-/"
NO_TOKEN = "none"  # token: none: the operator wants the endpoint without authentication
INTERNAL_ERROR = "internal error while checking this file"
_DURATION_SHAPE = re.compile(r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d)$")  # the schema's pattern
_DURATION_BOUND_HINT = "no interval or timeout needs longer; is it a slip, such as 400d for 400s?"
log = logging.getLogger(__name__)
BUNDLED_KINDS = ("alertmanager", "webhook", "file", "default")  # kinds with bundled templates


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> m.Config:
    """Read, validate and compile the file at `path`; raises ConfigError listing every problem."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(
            [Problem(str(file), None, None, "", f"cannot read: {exc.strerror}")]
        ) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(str(file), None, None, "", "not UTF-8 text")]) from exc
    try:
        return _load(text, raw, file, os.environ if environ is None else environ)
    except ConfigError:
        raise
    except Exception as exc:  # a config must never crash `check` or a reload
        # A bug of ours, not the operator's: say so in one line (the traceback goes to the debug
        # log), and keep the running config. Tests treat this message as a failure.
        log.debug("config check failed unexpectedly", exc_info=True)
        raise ConfigError(
            [
                Problem(
                    str(file),
                    None,
                    None,
                    "",
                    f"{INTERNAL_ERROR} ({type(exc).__name__})",
                    "please report this file (without its secrets) as a bug",
                )
            ]
        ) from exc


def _load(text: str, raw: bytes, file: Path, environ: Mapping[str, str]) -> m.Config:
    doc, problems = load_document(text, str(file), environ)
    if doc.data is None:
        raise ConfigError(problems)
    if not isinstance(doc.data, dict):
        raise ConfigError([*problems, doc.problem((), "the top level must be a mapping")])
    env_problems = list(problems)
    problems += validate(doc)
    compiler = _Compiler(doc, file, hashlib.sha256(raw).hexdigest(), environ)
    config = compiler.compile()
    problems += compiler.problems
    if doc.unresolved:  # an unset ${VAR} explains everything else wrong with that value
        unresolved = {format_path(p) for p in doc.unresolved}
        problems = [p for p in problems if p in env_problems or p.path not in unresolved]
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: (p.line or 0, p.column or 0)))
    assert config is not None
    return config


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


class _Compiler:
    def __init__(self, doc: Document, file: Path, digest: str, environ: Mapping[str, str]) -> None:
        self.doc = doc
        self.environ = environ  # the environment load_config was given (for $STATE_DIRECTORY)
        self.file = file
        self.digest = digest
        self.base_dir = file.resolve().parent
        self.problems: list[Problem] = []
        self.template_files: set[Path] = set()
        self.secret_files: dict[Path, str] = {}  # `*_file` secrets read, with what they held

    # -- helpers -------------------------------------------------------------------------------

    def problem(self, path: PathKey, message: str, hint: str | None = None, **kw: Any) -> None:
        self.problems.append(self.doc.problem(path, message, hint, **kw))

    def _dict(self, value: Any) -> dict[str, Any]:
        return value if isinstance(value, dict) else {}

    def _list(self, value: Any) -> list[Any]:
        return value if isinstance(value, list) else []

    def _strs(self, value: Any) -> tuple[str, ...]:
        return tuple(str(v) for v in self._list(value) if isinstance(v, str | int))

    def _duration(
        self, at: PathKey, value: Any, default: float, maximum: float = MAX_CONFIG_DURATION
    ) -> float:
        """Seconds of the duration at `at`. What the schema cannot see is reported here: a
        duration over `maximum` (say "999999999d", or .inf) and a number that is not one (.nan)."""
        if value is None:
            return default
        try:
            return parse_duration(value, maximum)
        except (ValueError, TypeError, AttributeError) as exc:
            if isinstance(value, bool) or not (
                isinstance(value, int | float) or _DURATION_SHAPE.match(str(value))
            ):
                return default  # the wrong shape: the schema reports it, at the same place
            if isinstance(value, float) and math.isnan(value):
                self.problem(at, "must be a duration", 'e.g. 30, "500ms", "30s", "5m", "2h"')
            elif isinstance(value, int | float) and value < 0:
                pass  # the schema says "must be at least 0"
            else:
                reason = str(exc).replace("a duration may be", "must be")
                self.problem(at, reason, _DURATION_BOUND_HINT)
            return default

    def _secret(self, where: PathKey, spec: dict[str, Any], key: str, required: bool) -> str | None:
        """`key` inline or `key_file` from disk; exactly one of them when `required`."""
        inline, file_key = spec.get(key), f"{key}_file"
        from_file = spec.get(file_key)
        if inline is not None and from_file is not None:
            self.problem((*where, file_key), f"give {key} or {file_key}, not both")
            return None
        if isinstance(from_file, str):
            path = Path(from_file)
            if not path.is_absolute():
                path = self.base_dir / path
            try:
                # Trailing newlines are an artefact of `echo secret > file`, never part of a secret.
                secret = path.read_text("utf-8").strip()
                self.secret_files[path] = secret
                return secret
            except OSError as exc:
                self.problem((*where, file_key), f"cannot read {path}: {exc.strerror}")
                return None
        if isinstance(inline, str):
            if inline == "" and required and (*where, key) not in self.doc.unresolved:
                self.problem((*where, key), f"{key} is empty", "is its environment variable set?")
            return inline or None
        if inline is not None:
            return None  # present but not a string: the schema has said so
        if required:
            self.problem(where, f'missing required key "{key}" (or "{file_key}")')
        return None

    def _auth_token(self, where: PathKey, spec: dict[str, Any], key: str) -> str | None:
        """A bearer token that guards an endpoint; None means no authentication.

        Leaving the key out means no authentication, as before. An *empty* token is refused:
        `token: "${AM_TOKEN:-}"` with the variable unset, or an empty token file, would
        otherwise switch authentication off without anyone deciding it. Whoever wants an
        endpoint open writes so: `token: none` (or `"${AM_TOKEN:-none}"`: a token if one is
        set, none otherwise)."""
        inline = spec.get(key)
        if inline == NO_TOKEN and f"{key}_file" not in spec:
            return None
        token = self._secret(where, spec, key, required=False)
        source = f"{key}_file" if isinstance(spec.get(f"{key}_file"), str) else key
        at = (*where, source)
        empty = token == "" or (source == key and inline == "")
        if empty and at not in self.doc.unresolved and not self._reported(at):
            hint = (
                f"the file is empty; to accept requests without a token, write {key}: {NO_TOKEN}"
                if source != key
                else f"is its environment variable set? To accept requests without a token, "
                f'write {key}: {NO_TOKEN} (or "${{VAR:-{NO_TOKEN}}}")'
            )
            self.problem(at, f"{key} is empty: authentication would be off", hint)
        return token or None

    def _reported(self, at: PathKey) -> bool:
        shown = format_path(at)
        return any(p.path == shown for p in self.problems)

    # -- sections ------------------------------------------------------------------------------

    def compile(self) -> m.Config | None:
        data = self.doc.data
        server = self._server(self._dict(data.get("server")))
        shutdown_timeout = self._duration(
            ("server", "shutdown_timeout"),
            self._dict(data.get("server")).get("shutdown_timeout"),
            10.0,
        )
        tz = self._timezone(data.get("timezone"))
        env = make_environment([self.base_dir], tz)
        targets = self._targets(self._dict(data.get("targets")))
        inputs = self._inputs(self._dict(data.get("inputs")), server, env)
        rules = self._rules(self._list(data.get("rules")), targets, inputs, env)
        if self.problems:
            return None
        # The digest covers every file the config reads, so a template edit is a change too, and
        # a rotated secret file takes effect on the next reload. (Only a truncated SHA-256 of it
        # all is ever shown.)
        digest = hashlib.sha256(self.digest.encode())
        for template in sorted(self.template_files):
            digest.update(template.read_bytes())
        for path, secret in sorted(self.secret_files.items()):
            digest.update(f"\0{path}\0{secret}".encode())
        return m.Config(
            path=self.file,
            digest=digest.hexdigest(),
            server=server,
            timezone=tz,
            targets=targets,
            inputs=inputs,
            rules=tuple(rules),
            template_files=tuple(sorted(self.template_files)),
            secret_files=tuple(sorted(self.secret_files)),
            state_dir=self._state_dir(data.get("state_dir")),
            synchronous=str(data.get("synchronous", "normal")),
            silences=self._silences(self._list(data.get("silences"))),
            shutdown_timeout=shutdown_timeout,
            alertmanager=self._alertmanager(data.get("alertmanager")),
        )

    def _alertmanager(self, spec: Any) -> m.AlertmanagerApi | None:
        if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
            return None
        return m.AlertmanagerApi(
            spec["url"].rstrip("/"),
            self._duration(("alertmanager", "timeout"), spec.get("timeout"), 5.0),
        )

    def _server(self, spec: dict[str, Any]) -> m.ServerConfig:
        listen = spec.get("listen", m.DEFAULT_LISTEN)
        host, port = "127.0.0.1", 8060
        if isinstance(listen, str):
            try:
                host, port = parse_listen(listen)
            except ValueError as exc:
                self.problem(("server", "listen"), str(exc), 'e.g. "127.0.0.1:8060" or "[::]:8060"')
        max_body = spec.get("max_body_bytes", m.DEFAULT_MAX_BODY)
        threads = spec.get("threads", m.DEFAULT_THREADS)
        limit = spec.get("connection_limit", m.DEFAULT_CONNECTION_LIMIT)
        return m.ServerConfig(
            reload_token=self._auth_token(("server",), spec, "reload_token"),
            host=host,
            port=port,
            max_body_bytes=max_body if isinstance(max_body, int) else m.DEFAULT_MAX_BODY,
            threads=threads if isinstance(threads, int) else m.DEFAULT_THREADS,
            connection_limit=limit if isinstance(limit, int) else m.DEFAULT_CONNECTION_LIMIT,
            idle_timeout=self._duration(
                ("server", "idle_timeout"), spec.get("idle_timeout"), m.DEFAULT_IDLE_TIMEOUT
            ),
        )

    def _state_dir(self, value: Any) -> Path:
        """The configured state_dir, else systemd's $STATE_DIRECTORY (its first path, as the
        unit may name several), else the packaged default; relative to the config's directory."""
        if isinstance(value, str) and value:
            path = Path(value)
        else:
            from_systemd = self.environ.get("STATE_DIRECTORY", "").split(":")[0]
            path = Path(from_systemd) if from_systemd else m.DEFAULT_STATE_DIR
        return path if path.is_absolute() else self.base_dir / path

    def _silences(self, specs: list[Any]) -> tuple[Silence, ...]:
        out = []
        for index, raw in enumerate(specs):
            spec, where = self._dict(raw), ("silences", index)
            parsed = []
            for i, text in enumerate(self._list(spec.get("matchers"))):
                try:
                    parsed.append(matchers.parse(str(text)))
                except ValueError as exc:
                    self.problem((*where, "matchers", i), str(exc))
            span = []
            for key, default in (("starts_at", 0.0), ("ends_at", float("inf"))):
                value = spec.get(key)
                if value is None:
                    span.append(default)
                    continue
                try:
                    when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
                except ValueError:
                    self.problem(
                        (*where, key), "not an RFC 3339 time", 'e.g. "2026-12-01T08:00:00+08:00"'
                    )
                    span.append(default)
                    continue
                if when.tzinfo is None:
                    self.problem((*where, key), "the time needs a zone", 'e.g. "+08:00" or "Z"')
                span.append(when.timestamp())
            if len(span) == 2 and span[0] >= span[1]:
                self.problem(where, "ends_at is not after starts_at")
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

    def _policy(self, where: PathKey, spec: dict[str, Any], robot: bool) -> m.SendPolicy:
        # What the target leaves out comes from SendPolicy's defaults (written only there).
        base = m.SendPolicy(rate=m.ROBOT_RATE if robot else m.NO_RATE)
        rate_spec = self._dict(spec.get("rate_limit"))
        messages = rate_spec.get("messages", base.rate.messages)
        rate = m.RateLimit(
            messages if isinstance(messages, int) else base.rate.messages,
            self._duration((*where, "rate_limit", "per"), rate_spec.get("per"), base.rate.per),
        )
        digest = self._dict(spec.get("digest"))
        # Merging starts, by default, once more are queued than one rate window can send.
        after = digest.get("after", rate.messages if rate.messages > 0 else base.digest_after)
        most = digest.get("max_alerts", base.digest_max)
        retry = self._dict(spec.get("retry"))
        return m.SendPolicy(
            rate=rate,
            lockout=self._duration((*where, "lockout"), spec.get("lockout"), base.lockout),
            digest=digest.get("enabled", base.digest) is not False,
            digest_after=after if isinstance(after, int) else base.digest_after,
            digest_max=most if isinstance(most, int) else base.digest_max,
            split=spec.get("oversize", "split") != "truncate",
            retry_initial=self._duration(
                (*where, "retry", "initial"), retry.get("initial"), base.retry_initial
            ),
            retry_max=self._duration((*where, "retry", "max"), retry.get("max"), base.retry_max),
            give_up_after=self._duration(
                (*where, "retry", "give_up_after"), retry.get("give_up_after"), base.give_up_after
            ),
        )

    def _timezone(self, name: Any) -> ZoneInfo:
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
            self.problem(
                ("timezone",),
                f'unknown time zone "{shown}"',
                'e.g. "Asia/Shanghai", "UTC"',
            )
            return ZoneInfo("UTC")

    def _targets(self, specs: dict[str, Any]) -> dict[str, m.Target]:
        out: dict[str, m.Target] = {}
        for name, raw in specs.items():
            spec, where = self._dict(raw), ("targets", name)
            timeout = self._duration((*where, "timeout"), spec.get("timeout"), m.DEFAULT_TIMEOUT)
            queue_size = spec.get("queue_size", m.DEFAULT_QUEUE_SIZE)
            queue_size = queue_size if isinstance(queue_size, int) else m.DEFAULT_QUEUE_SIZE
            kind = spec.get("type")
            if kind == "robot":
                webhook = self._secret(where, spec, "webhook", required=True)
                if webhook and not self._has_access_token(webhook):
                    field = "webhook" if "webhook" in spec else "webhook_file"
                    self.problem(
                        (*where, field),
                        "the webhook URL has no access_token parameter",
                        "copy the whole URL from the robot's settings",
                    )
                out[name] = m.RobotTarget(
                    name=name,
                    webhook=webhook or "",
                    secret=self._secret(where, spec, "secret", required=False),
                    keywords=self._strs(spec.get("keywords")),
                    timeout=timeout,
                    queue_size=queue_size,
                    policy=self._policy(where, spec, robot=True),
                )
            elif kind == "work_notice":
                userids, dept_ids = (
                    self._strs(spec.get("userids")),
                    self._strs(spec.get("dept_ids")),
                )
                to_all = spec.get("to_all_user") is True
                if not (userids or dept_ids or to_all):
                    self.problem(
                        where,
                        "a work notice needs recipients",
                        "set userids, dept_ids or to_all_user: true",
                    )
                agent_id = spec.get("agent_id")
                out[name] = m.WorkNoticeTarget(
                    name=name,
                    app_key=str(spec.get("app_key", "")),
                    app_secret=self._secret(where, spec, "app_secret", required=True) or "",
                    agent_id=agent_id if isinstance(agent_id, int) else 0,
                    userids=userids,
                    dept_ids=dept_ids,
                    to_all_user=to_all,
                    api_base=str(spec.get("api_base", m.DEFAULT_API_BASE)).rstrip("/"),
                    timeout=timeout,
                    queue_size=queue_size,
                    policy=self._policy(where, spec, robot=False),
                )
        return out

    @staticmethod
    def _has_access_token(url: str) -> bool:
        return bool(parse_qs(urlsplit(url).query).get("access_token", [""])[0])

    def _template(
        self, env: SandboxedEnvironment, path: PathKey, source: Any, allowed: frozenset[str] | None
    ) -> jinja2.Template | None:
        """Compile inline template text; check the variables it reads against `allowed`."""
        if not isinstance(source, str):
            return None
        try:
            template = env.from_string(source)
            names = undeclared_variables(env, source)
        except jinja2.TemplateSyntaxError as exc:
            self.problem(
                path, f"template syntax error: {exc.message}", f"template line {exc.lineno}"
            )
            return None
        if allowed is not None:
            for name in sorted(names - allowed):
                self._unknown_variable(path, name, allowed, "template")
        return template

    def _unknown_variable(
        self, path: PathKey, name: str, allowed: frozenset[str], what: str
    ) -> None:
        if name in ALERTMANAGER_VARIABLES:
            self.problem(
                path,
                f'{what} uses "{name}", which only Alertmanager inputs have',
                "list only alertmanager inputs in the rule's inputs",
            )
            return
        self.problem(
            path,
            f'{what} uses unknown variable "{name}"',
            did_you_mean(name, sorted(allowed)) or _variables_hint(allowed),
        )

    def _inputs(
        self, specs: dict[str, Any], server: m.ServerConfig, env: SandboxedEnvironment
    ) -> dict[str, m.Input]:
        out: dict[str, m.Input] = {}
        paths: dict[str, str] = {}
        for name, raw in specs.items():
            spec, where = self._dict(raw), ("inputs", name)
            kind = spec.get("type")
            if kind == "file":
                out[name] = self._file_input(name, spec, where, env)
                continue
            if kind not in ("alertmanager", "webhook", "dingtalk_callback", "dingtalk_robot"):
                continue  # the schema already reported it
            path = spec.get("path")
            if isinstance(path, str):
                if path.startswith(RESERVED_PREFIX) or path == "/metrics":
                    self.problem(
                        (*where, "path"),
                        f'paths under "{RESERVED_PREFIX}" and "/metrics" are reserved',
                    )
                elif path in paths:
                    self.problem(
                        (*where, "path"), f'path "{path}" is already used by input "{paths[path]}"'
                    )
                paths[path] = name
            if kind == "dingtalk_callback":
                out[name] = self._callback_input(name, spec, where)
                continue
            if kind == "dingtalk_robot":
                allow = self._dict(spec.get("allow"))
                max_body = spec.get("max_body_bytes", 65_536)
                out[name] = m.ChatInput(
                    name=name,
                    path=str(path),
                    app_secret=self._secret(where, spec, "app_secret", required=True) or "",
                    staff_ids=frozenset(self._strs(allow.get("staff_ids"))),
                    admins=allow.get("admins") is not False,
                    max_age=self._duration((*where, "max_age"), spec.get("max_age"), 3_600.0),
                    max_body_bytes=max_body if isinstance(max_body, int) else 65_536,
                    definition=_canonical(spec),
                )
                continue
            max_body = spec.get("max_body_bytes", server.max_body_bytes)

            def tpl(
                key: str,
                sub: str | None = None,
                spec: dict[str, Any] = spec,
                where: PathKey = where,
            ) -> jinja2.Template | None:
                source = spec.get(key) if sub is None else self._dict(spec.get(key)).get(sub)
                at = (*where, key) if sub is None else (*where, key, sub)
                return self._template(env, at, source, WEBHOOK_INPUT_VARIABLES)

            labels = {k: t for k in self._dict(spec.get("labels")) if (t := tpl("labels", k))}
            annotations = {
                k: t for k in self._dict(spec.get("annotations")) if (t := tpl("annotations", k))
            }
            out[name] = m.HttpInput(
                name=name,
                type=kind,
                path=str(path),
                token=self._auth_token(where, spec, "token"),
                max_body_bytes=max_body if isinstance(max_body, int) else server.max_body_bytes,
                split=spec.get("split") is True,
                labels=labels,
                annotations=annotations,
                status=tpl("status"),
                fingerprint=tpl("fingerprint"),
                definition=_canonical(spec),
            )
        return out

    def _file_input(
        self, name: str, spec: dict[str, Any], where: PathKey, env: SandboxedEnvironment
    ) -> m.FileInput:
        def regex(at: PathKey, source: Any, flags: int = 0) -> re.Pattern[str] | None:
            if not isinstance(source, str):
                return None
            try:
                return matchers.compile_pattern(source, flags)
            except re.error as exc:
                self.problem(at, f"bad regular expression: {exc}")
                return None

        def templates(at: PathKey, raw: Any, allowed: frozenset[str]) -> dict[str, jinja2.Template]:
            return {
                str(k): t
                for k, source in self._dict(raw).items()
                if (t := self._template(env, (*at, k), source, allowed))
            }

        patterns: list[m.LinePattern] = []
        for i, raw in enumerate(self._list(spec.get("patterns"))):
            item, at = self._dict(raw), (*where, "patterns", i)
            compiled = regex((*at, "regex"), item.get("regex"))
            if compiled is None:
                continue
            allowed = FILE_LINE_VARIABLES | frozenset(compiled.groupindex)
            patterns.append(
                m.LinePattern(
                    regex=compiled,
                    labels=templates((*at, "labels"), item.get("labels"), allowed),
                    annotations=templates((*at, "annotations"), item.get("annotations"), allowed),
                )
            )
        multiline = None
        if isinstance(ml := spec.get("multiline"), dict):
            start = regex((*where, "multiline", "start"), ml.get("start"))
            if start is not None:
                max_lines = ml.get("max_lines", 500)
                multiline = m.Multiline(
                    start=start,
                    timeout=self._duration(
                        (*where, "multiline", "timeout"), ml.get("timeout"), 2.0
                    ),
                    max_lines=max_lines if isinstance(max_lines, int) else 500,
                )
        threshold = None
        if isinstance(th := spec.get("threshold"), dict) and isinstance(th.get("count"), int):
            within = self._duration((*where, "threshold", "within"), th.get("within"), 60.0)
            threshold = m.Threshold(th["count"], within)

        def number(key: str, default: int) -> int:
            value = spec.get(key, default)
            return value if isinstance(value, int) and not isinstance(value, bool) else default

        return m.FileInput(
            name=name,
            paths=tuple(self._glob_path(p) for p in self._strs(spec.get("paths"))),
            exclude=self._strs(spec.get("exclude")),
            read_from="beginning" if spec.get("read_from") == "beginning" else "end",
            patterns=tuple(patterns),
            # Input-wide labels see only what every line has (group names differ per pattern).
            labels=templates((*where, "labels"), spec.get("labels"), FILE_LINE_VARIABLES),
            multiline=multiline,
            threshold=threshold,
            max_line_bytes=number("max_line_bytes", 65_536),
            poll_interval=self._duration((*where, "poll_interval"), spec.get("poll_interval"), 1.0),
            rotate_wait=self._duration((*where, "rotate_wait"), spec.get("rotate_wait"), 5.0),
            close_inactive=self._duration(
                (*where, "close_inactive"), spec.get("close_inactive"), 300.0
            ),
            max_open_files=number("max_open_files", 256),
            inotify=spec.get("inotify") is not False,
            definition=_canonical({**spec, "paths": spec.get("paths"), "base": str(self.base_dir)}),
        )

    def _callback_input(self, name: str, spec: dict[str, Any], where: PathKey) -> m.CallbackInput:
        token = self._secret(where, spec, "token", required=True) or ""
        aes_key = self._secret(where, spec, "aes_key", required=True) or ""
        if aes_key:
            try:
                aes_key_bytes(aes_key)
            except ValueError as exc:
                at = (*where, "aes_key_file" if "aes_key_file" in spec else "aes_key")
                self.problem(at, str(exc), "copy the EncodingAESKey exactly as DingTalk shows it")
        max_body = spec.get("max_body_bytes", 65_536)
        return m.CallbackInput(
            name=name,
            path=str(spec.get("path")),
            token=token,
            aes_key=aes_key,
            owner_key=str(spec.get("owner_key", "")),
            max_age=self._duration((*where, "max_age"), spec.get("max_age"), 3_600.0),
            max_body_bytes=max_body if isinstance(max_body, int) else 65_536,
            definition=_canonical(spec),
        )

    def _glob_path(self, pattern: str) -> str:
        """A path glob made absolute: relative to the config file's directory, `~` expanded."""
        path = Path(os.path.expanduser(pattern))
        return str(path if path.is_absolute() else self.base_dir / path)

    def _rules(
        self,
        specs: list[Any],
        targets: dict[str, m.Target],
        inputs: dict[str, m.Input],
        env: SandboxedEnvironment,
    ) -> list[m.Rule]:
        out: list[m.Rule] = []
        names: dict[str, int] = {}
        # Names declared in the file count even when their definitions are broken (already
        # reported): a rule naming them is not wrong too. A missing section checks nothing.
        declared_targets = self.doc.data.get("targets")
        declared_inputs = self.doc.data.get("inputs")
        target_names = sorted(declared_targets) if isinstance(declared_targets, dict) else None
        input_names = sorted(declared_inputs) if isinstance(declared_inputs, dict) else None
        for index, raw in enumerate(specs):
            spec, where = self._dict(raw), ("rules", index)
            name = str(spec.get("name", f"rule-{index}"))
            if name in names:
                self.problem(
                    (*where, "name"), f'rule name "{name}" is already used by rules[{names[name]}]'
                )
            names[name] = index

            rule_inputs = self._strs(spec.get("inputs")) if "inputs" in spec else None
            for i, ref in enumerate(rule_inputs or ()):
                if input_names is not None and ref not in input_names:
                    self.problem(
                        (*where, "inputs", i),
                        f'unknown input "{ref}"',
                        did_you_mean(ref, input_names) or _known("inputs", input_names),
                    )
            rule_targets = self._strs(spec.get("targets"))
            for i, ref in enumerate(rule_targets):
                if target_names is not None and ref not in target_names:
                    self.problem(
                        (*where, "targets", i),
                        f'unknown target "{ref}"',
                        did_you_mean(ref, target_names) or _known("targets", target_names),
                    )

            msgtype: MsgType = spec.get("msgtype", "markdown")
            self._check_msgtype(
                where, spec, msgtype, [targets[t] for t in rule_targets if t in targets]
            )
            kinds = {inputs[i].type for i in (rule_inputs or input_names or ()) if i in inputs}
            allowed = COMMON_VARIABLES | (
                ALERTMANAGER_VARIABLES if kinds == {"alertmanager"} else set()
            )

            def tpl(
                key: str, source: Any, at: PathKey, allowed: frozenset[str] = allowed
            ) -> jinja2.Template | None:
                return self._template(env, at, source, allowed)

            default_title = {
                frozenset({"file"}): FILE_DEFAULT_TITLE,
                frozenset({"dingtalk_callback"}): CALLBACK_DEFAULT_TITLE,
            }.get(frozenset(kinds), DEFAULT_TITLE)
            title = tpl("title", spec.get("title", default_title), (*where, "title"))
            body = self._body_template(env, where, spec, msgtype, allowed, kinds)
            buttons = []
            for i, button in enumerate(self._list(spec.get("buttons"))):
                b = self._dict(button)
                bt = tpl("title", b.get("title"), (*where, "buttons", i, "title"))
                bu = tpl("url", b.get("url"), (*where, "buttons", i, "url"))
                if bt and bu:
                    buttons.append(m.ButtonTemplate(bt, bu))
            mention = self._dict(spec.get("mention"))
            out.append(
                m.Rule(
                    name=name,
                    index=index,
                    inputs=frozenset(rule_inputs) if rule_inputs is not None else None,
                    matchers=self._matchers(where, spec),
                    targets=rule_targets,
                    continue_=spec.get("continue") is True,
                    msgtype=msgtype,
                    title=title or env.from_string(""),
                    body=body or env.from_string(""),
                    url=tpl("url", spec.get("url"), (*where, "url")),
                    pic_url=tpl("pic_url", spec.get("pic_url"), (*where, "pic_url")),
                    buttons=tuple(buttons),
                    btn_orientation=str(spec.get("btn_orientation", "0")),
                    mention=Mention(
                        mobiles=self._strs(mention.get("mobiles")),
                        userids=self._strs(mention.get("userids")),
                        all=mention.get("all") is True,
                    ),
                    group_by=self._strs(spec["group_by"]) if "group_by" in spec else None,
                    group_wait=self._duration((*where, "group_wait"), spec.get("group_wait"), 30.0),
                    group_interval=self._duration(
                        (*where, "group_interval"), spec.get("group_interval"), 300.0
                    ),
                    # Alertmanager already decides when to repeat (its own repeat_interval): a
                    # rule fed only by it passes every notification on unless told otherwise.
                    repeat_interval=self._duration(
                        (*where, "repeat_interval"),
                        spec.get("repeat_interval"),
                        0.0 if kinds == {"alertmanager"} else 14_400.0,
                    ),
                    send_resolved=spec.get("send_resolved") is not False,
                )
            )
        return out

    def _check_msgtype(
        self, where: PathKey, spec: dict[str, Any], msgtype: str, targets: list[m.Target]
    ) -> None:
        if spec.get("mention") and msgtype not in ("text", "markdown"):
            self.problem(
                (*where, "mention"),
                f"DingTalk ignores mentions in {msgtype} messages",
                "use msgtype text or markdown",
            )
        if msgtype == "link" and "url" not in spec:
            self.problem(
                where, 'a link message needs "url"', 'e.g. url: "{{ alerts[0].generatorURL }}"'
            )
        if msgtype == "actionCard" and "url" not in spec and "buttons" not in spec:
            self.problem(where, 'an actionCard needs "url" (one button) or "buttons"')
        if "buttons" in spec and msgtype != "actionCard":
            self.problem((*where, "buttons"), "buttons are only shown on actionCard messages")
        if msgtype == "feedCard":
            for target in targets:
                if target.type == "work_notice":
                    self.problem(
                        (*where, "msgtype"),
                        f'work notices cannot carry feedCard (target "{target.name}")',
                    )

    def _matchers(self, where: PathKey, spec: dict[str, Any]) -> tuple[matchers.Matcher, ...]:
        out = [matchers.equal(k, str(v)) for k, v in self._dict(spec.get("match")).items()]
        for label, pattern in self._dict(spec.get("match_re")).items():
            try:
                out.append(matchers.regex(label, str(pattern)))
            except re.error as exc:
                self.problem((*where, "match_re", label), f"bad regular expression: {exc}")
        for i, text in enumerate(self._list(spec.get("matchers"))):
            try:
                out.append(matchers.parse(str(text)))
            except ValueError as exc:
                self.problem((*where, "matchers", i), str(exc))
        return tuple(out)

    def _body_template(
        self,
        env: SandboxedEnvironment,
        where: PathKey,
        spec: dict[str, Any],
        msgtype: str,
        allowed: frozenset[str],
        kinds: Collection[str],
    ) -> jinja2.Template | None:
        at = (*where, "template")
        source = spec.get("template")
        if source is None:  # the bundled default for the input kind (both kinds: a dispatcher)
            # (Choosing here saves the dispatcher's include on every render.)
            base = next(iter(kinds)) if len(kinds) == 1 else "default"
            if base not in BUNDLED_KINDS:
                base = "webhook"  # a callback's fields show like a webhook body's
            suffix = "txt" if msgtype in ("text", "link") else "md"
            return env.get_template(f"{base}.{suffix}.j2")
        if not isinstance(source, str):
            return None
        if not _looks_like_file(source):
            return self._template(env, at, source, allowed)
        local = self.base_dir / source
        try:
            template = env.get_template(source)
        except jinja2.TemplateNotFound:
            self.problem(
                at,
                f'template file "{source}" not found',
                f"looked in {self.base_dir} and the bundled templates",
            )
            return None
        except jinja2.TemplateSyntaxError as exc:
            self.problem(
                at,
                f"template syntax error in {source}: {exc.message}",
                f"{source} line {exc.lineno}",
            )
            return None
        if local.is_file():
            self.template_files.add(local.resolve())
            self._check_file_variables(env, at, source, allowed, set())
        return template

    def _check_file_variables(
        self,
        env: SandboxedEnvironment,
        at: PathKey,
        name: str,
        allowed: frozenset[str],
        seen: set[str],
    ) -> None:
        """Check the operator's template file (and files it includes) for unknown variables."""
        if name in seen:
            return
        seen.add(name)
        local = self.base_dir / name
        if not local.is_file():
            return  # a bundled template: covered by the project's own tests
        self.template_files.add(local.resolve())
        source = local.read_text("utf-8")
        for var in sorted(undeclared_variables(env, source) - allowed):
            self._unknown_variable(at, var, allowed, f"template {name}")
        for child in referenced_templates(env, source):
            self._check_file_variables(env, at, child, allowed, seen)


def _looks_like_file(source: str) -> bool:
    return "\n" not in source and "{" not in source and source.rstrip().endswith((".j2", ".tmpl"))


def _known(what: str, names: list[str]) -> str:
    return f"known {what}: {', '.join(names)}" if names else f"no {what} are defined"


def _variables_hint(allowed: frozenset[str]) -> str:
    return "variables: " + ", ".join(sorted(allowed))
