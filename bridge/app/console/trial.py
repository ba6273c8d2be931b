"""The playground's trial: the config file with one rule (and its template) replaced by what the
operator typed, compiled as the daemon compiles it, then a payload decided and rendered as
`dingtalk-bridge render` does (bridge/cli/main.py cmd_render), against the live state read-only.

Nothing acts here: no row is written, nothing is posted. What the operator typed goes through the
config compiler, so a template runs in the same sandbox and within the same limits as in the
daemon, and a mistake comes back as the config's problem (located in the rule's or the
template's text), never as an exception.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from bridge.app.console.samples import template_text
from bridge.config.compile import compile_document
from bridge.config.model import Config, Target
from bridge.config.yamlsource import Document, PathKey, format_path, load_document
from bridge.errors import ConfigError, InputError, Problem
from bridge.inputs.registry import KINDS
from bridge.model import Message
from bridge.pipeline.preview import Preview, narrate, preview

MAX_RULE_CHARS = 64 * 1024
PLAYGROUND_SOURCE = "playground"  # where a tried log line "came from" (a file input's path)
MAX_TEMPLATE_CHARS = 256 * 1024
_TEMPLATE_LINE = re.compile(r"template line (\d+)")


@dataclass(frozen=True)
class Attempt:
    """What the operator asks to try."""

    input: str
    payload: bytes
    rule: str = ""  # the name of the rule the edits replace ("" : the file's rules as they are)
    rule_yaml: str | None = None  # the rule's YAML as typed; None: as in the file
    template: str | None = None  # the rule's body template as typed; None: as the rule says


@dataclass(frozen=True)
class Found:
    """One problem, said where the operator can fix it: in the rule's text, the template's, the
    payload, or the config file."""

    where: str  # "rule" | "template" | "payload" | "config"
    line: int | None
    path: str
    message: str
    hint: str = ""


@dataclass(frozen=True)
class Delivered:
    """One message the trial would send: to which target, under which rule, and its message."""

    rule: str
    target: Target
    message: Message


@dataclass(frozen=True)
class Trial:
    problems: tuple[Found, ...] = ()
    decisions: tuple[str, ...] = ()  # what the pipeline would do, a line each (as `render`)
    messages: tuple[Delivered, ...] = ()
    state_problem: str = ""
    config: Config | None = None
    at: float = 0.0
    file_digest: str = ""  # sha256 of the config file as this trial read it ("": unread)


def run(source: Path, environ: Mapping[str, str], attempt: Attempt, now: datetime) -> Trial:
    """Compile `source` with the attempt's edits, then decide and render its payload."""
    config, problems, file_digest = compile_with(source, environ, attempt)
    if config is None:
        return Trial(problems=tuple(problems), file_digest=file_digest)
    spec = config.inputs.get(attempt.input)
    kind = KINDS.get(spec.type) if spec is not None else None
    if spec is None or kind is None or kind.sample is None:
        found = Found("payload", None, "", f"input {attempt.input!r} takes no alerts here")
        return Trial(problems=(found,), file_digest=file_digest)
    try:
        events = kind.sample(spec, attempt.payload, PLAYGROUND_SOURCE, now)
    except InputError as exc:
        message = f"the input would answer {exc.status}: {exc}"
        return Trial(problems=(Found("payload", None, "", message),), file_digest=file_digest)
    except (ValueError, RecursionError) as exc:
        found = Found("payload", None, "", f"cannot read: {exc}")
        return Trial(problems=(found,), file_digest=file_digest)
    result = preview(config, events, now)
    return replace(_decided(config, result, now), file_digest=file_digest)


def compile_with(
    source: Path, environ: Mapping[str, str], attempt: Attempt
) -> tuple[Config | None, list[Found], str]:
    """The config at `source` with `attempt.rule` replaced as typed; every problem located; and
    the sha256 of the file as read (to tell it from the file the daemon loaded)."""
    try:
        raw = source.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Found("config", None, "", f"cannot read {source}: {exc}")], ""
    file_digest = hashlib.sha256(raw).hexdigest()
    doc, problems = load_document(text, str(source), environ)
    found: list[Found] = []
    index = _rule_index(doc, attempt.rule)
    if index is not None and (attempt.rule_yaml is not None or attempt.template is not None):
        found += _splice(doc, index, attempt)
        if found:
            return None, found, file_digest
    try:
        config = compile_document(doc, problems, raw, source, environ)
    except ConfigError as exc:
        rule_path = format_path(("rules", index)) if index is not None else None
        return None, [_locate(p, rule_path) for p in exc.problems], file_digest
    return config, [], file_digest


def _rule_index(doc: Document, name: str) -> int | None:
    rules = doc.data.get("rules") if isinstance(doc.data, dict) else None
    if not name or not isinstance(rules, list):
        return None
    for index, rule in enumerate(rules):
        if isinstance(rule, dict) and rule.get("name") == name:
            return index
    return None


def _splice(doc: Document, index: int, attempt: Attempt) -> list[Found]:
    """Put the typed rule (and template) at rules[index], with the typed text's positions, so a
    problem in it is located in what the operator typed."""
    at: PathKey = ("rules", index)
    rule = doc.data["rules"][index]
    written = rule.get("template") if isinstance(rule, dict) else None
    positions: dict[PathKey, tuple[int, int]] = {}
    keys: dict[PathKey, tuple[int, int]] = {}
    if attempt.rule_yaml is not None:
        if len(attempt.rule_yaml) > MAX_RULE_CHARS:
            return [Found("rule", None, "", f"the rule is longer than {MAX_RULE_CHARS} characters")]
        # No environment: ${VAR} in typed text must not read the daemon's secrets.
        typed, problems = load_document(attempt.rule_yaml, "rule", {})
        if problems:
            return [Found("rule", p.line, p.path, p.message, p.hint or "") for p in problems]
        if not isinstance(typed.data, dict):
            return [Found("rule", 1, "", "a rule is a mapping (name, inputs, match, targets...)")]
        rule = typed.data
        positions = {(*at, *k): v for k, v in typed.value_pos.items()}
        keys = {(*at, *k): v for k, v in typed.key_pos.items()}
    if attempt.template is not None:
        if len(attempt.template) > MAX_TEMPLATE_CHARS:
            message = f"the template is longer than {MAX_TEMPLATE_CHARS} characters"
            return [Found("template", None, "", message)]
        # The file's text as it is: the file itself (so the message says which file it came
        # from, and includes and extends resolve as the daemon resolves them).
        unchanged = template_text(Path(doc.file).parent, written) == attempt.template
        rule = {**rule, "template": written if unchanged else attempt.template}
    doc.data["rules"][index] = rule
    for table, fresh in ((doc.value_pos, positions), (doc.key_pos, keys)):
        if attempt.rule_yaml is not None:
            for key in [k for k in table if k[: len(at)] == at]:
                del table[key]
        table.update(fresh)
    doc.value_pos.setdefault(at, (1, 1))
    return []


def _locate(problem: Problem, rule_path: str | None) -> Found:
    """Where the operator fixes `problem`: in the typed template, the typed rule, or the file."""
    hint = problem.hint or ""
    inside = rule_path is not None and (
        problem.path == rule_path or problem.path.startswith((rule_path + ".", rule_path + "["))
    )
    if inside and rule_path is not None:
        below = problem.path[len(rule_path) :].lstrip(".")
        if below == "template":
            line = _TEMPLATE_LINE.search(hint)
            return Found(
                "template", int(line.group(1)) if line else None, below, problem.message, hint
            )
        return Found("rule", problem.line, below, problem.message, hint)
    return Found("config", problem.line, problem.path, problem.message, hint)


def _decided(config: Config, result: Preview, now: datetime) -> Trial:
    decisions: list[str] = []
    messages: list[Delivered] = []
    for said in narrate(result, config.timezone, config.people):  # as `render` says it
        if isinstance(said, str):
            decisions.append(said)
        else:
            target = config.targets[said.target]
            messages.append(Delivered(said.rule, target, result.rendered[said.id].message))
    if not result.decision.events:
        decisions.append("the payload makes no event")
    return Trial(
        decisions=tuple(decisions),
        messages=tuple(messages),
        state_problem=result.state_problem,
        config=config,
        at=now.timestamp(),
    )
