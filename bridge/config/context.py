"""What every section compiler shares: the document, the list of problems, and the checks that
read a value the same way wherever it appears (durations, secrets, bearer tokens, templates).

Every check appends to one list of problems instead of stopping: an operator fixing a config wants
to see everything wrong with it at once. The checks are defensive about types because they also
run on documents that failed schema validation (so one bad key does not hide a bad reference).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from bridge.alerting import matchers
from bridge.config.schema import did_you_mean
from bridge.config.templating import (
    ALERTMANAGER_VARIABLES,
    GRAFANA_VARIABLES,
    undeclared_variables,
)
from bridge.config.yamlsource import Document, PathKey, format_path
from bridge.durations import MAX_CONFIG_DURATION, parse_duration
from bridge.errors import Problem

NO_TOKEN = "none"  # token: none: the operator wants the endpoint without authentication
_DURATION_SHAPE = re.compile(r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d|w)$")  # the schema's patterns
_DURATION_BOUND_HINT = "no interval or timeout needs longer; is it a slip, such as 400d for 400s?"


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_strs(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in as_list(value) if isinstance(v, str | int))


def as_int(value: Any, default: int) -> int:
    """`value` if an integer (not a bool), else `default` (the schema says what is wrong)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def canonical(value: Any) -> str:
    """Canonical JSON of a raw definition: equal text, unchanged input (reload keeps it running)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def variables_hint(allowed: frozenset[str]) -> str:
    return "variables: " + ", ".join(sorted(allowed))


class CompileContext:
    """One compilation of one document: where problems and the files read are collected."""

    def __init__(self, doc: Document, file: Path, environ: Mapping[str, str]) -> None:
        self.doc = doc
        self.environ = environ  # the environment load_config was given (for $STATE_DIRECTORY)
        self.file = file
        self.base_dir = file.resolve().parent
        self.problems: list[Problem] = []
        self.template_files: set[Path] = set()
        self.secret_files: dict[Path, str] = {}  # `*_file` secrets read, with what they held

    def problem(self, path: PathKey, message: str, hint: str | None = None, **kw: Any) -> None:
        self.problems.append(self.doc.problem(path, message, hint, **kw))

    def unknown_names(
        self, at: PathKey, refs: Sequence[str], known: list[str] | None, what: str
    ) -> None:
        """Report each name in the list `refs` (at `at`) that is not a known `what` ("target",
        "input"): with the nearest known name, or all of them. `known` None: the section the
        names come from failed, and its own problems say why."""
        if known is None:
            return
        for i, ref in enumerate(refs):
            if ref not in known:
                listed = (
                    f"known {what}s: {', '.join(known)}" if known else f"no {what}s are defined"
                )
                self.problem(
                    (*at, i), f'unknown {what} "{ref}"', did_you_mean(ref, known) or listed
                )

    def reported(self, at: PathKey) -> bool:
        shown = format_path(at)
        return any(p.path == shown for p in self.problems)

    def duration(
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

    def secret(self, where: PathKey, spec: dict[str, Any], key: str, required: bool) -> str | None:
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

    def auth_token(self, where: PathKey, spec: dict[str, Any], key: str) -> str | None:
        """A bearer token that guards an endpoint; None means no authentication.

        Leaving the key out means no authentication, as before. An *empty* token is refused:
        `token: "${AM_TOKEN:-}"` with the variable unset, or an empty token file, would
        otherwise switch authentication off without anyone deciding it. Whoever wants an
        endpoint open writes so: `token: none` (or `"${AM_TOKEN:-none}"`: a token if one is
        set, none otherwise)."""
        inline = spec.get(key)
        if inline == NO_TOKEN and f"{key}_file" not in spec:
            return None
        token = self.secret(where, spec, key, required=False)
        source = f"{key}_file" if isinstance(spec.get(f"{key}_file"), str) else key
        at = (*where, source)
        empty = token == "" or (source == key and inline == "")
        if empty and at not in self.doc.unresolved and not self.reported(at):
            hint = (
                f"the file is empty; to accept requests without a token, write {key}: {NO_TOKEN}"
                if source != key
                else f"is its environment variable set? To accept requests without a token, "
                f'write {key}: {NO_TOKEN} (or "${{VAR:-{NO_TOKEN}}}")'
            )
            self.problem(at, f"{key} is empty: authentication would be off", hint)
        return token or None

    def regex(self, at: PathKey, source: Any, flags: int = 0) -> re.Pattern[str] | None:
        """An operator's regular expression, compiled; None (and a problem) when it is bad."""
        if not isinstance(source, str):
            return None
        try:
            return matchers.compile_pattern(source, flags)
        except re.error as exc:
            self.problem(at, f"bad regular expression: {exc}")
            return None

    def glob_path(self, pattern: str) -> str:
        """A path glob made absolute: relative to the config file's directory, `~` expanded."""
        path = Path(os.path.expanduser(pattern))
        return str(path if path.is_absolute() else self.base_dir / path)

    def template(
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
                self.unknown_variable(path, name, allowed, "template")
        return template

    def templates(
        self, env: SandboxedEnvironment, at: PathKey, raw: Any, allowed: frozenset[str]
    ) -> dict[str, jinja2.Template]:
        """A mapping of names to template texts (labels, annotations), compiled."""
        return {
            str(k): t
            for k, source in as_dict(raw).items()
            if (t := self.template(env, (*at, k), source, allowed))
        }

    def unknown_variable(
        self, path: PathKey, name: str, allowed: frozenset[str], what: str
    ) -> None:
        if name in GRAFANA_VARIABLES:  # (Grafana's notification is Alertmanager's, and more)
            kinds = ("alertmanager", "grafana") if name in ALERTMANAGER_VARIABLES else ("grafana",)
            self.problem(
                path,
                f'{what} uses "{name}", which only'
                f" {' and '.join(k.capitalize() for k in kinds)} inputs have",
                f"list only {' or '.join(kinds)} inputs in the rule's inputs",
            )
            return
        self.problem(
            path,
            f'{what} uses unknown variable "{name}"',
            did_you_mean(name, sorted(allowed)) or variables_hint(allowed),
        )
