"""Turn a schema-valid document into a `Config`, checking meaning the schema cannot express.

`load_config` reads, validates and compiles; each section has its own module (sections, targets,
inputs/, rules) sharing one `CompileContext` (context.py), which collects every problem instead
of stopping at the first: an operator fixing a config wants to see everything wrong at once.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from bridge.config import model as m
from bridge.config import nodeid
from bridge.config.actions import check_rule_actions, compile_actions
from bridge.config.cardtargets import check_card_targets
from bridge.config.context import CompileContext, as_dict, as_list
from bridge.config.inputs.registry import compile_inputs
from bridge.config.oncall import compile_oncall
from bridge.config.people import compile_people, compile_recipients, with_oncall
from bridge.config.presets import expand_presets
from bridge.config.rules import compile_rules
from bridge.config.schema import validate
from bridge.config.sections import (
    check_console_path,
    compile_alertmanager,
    compile_claim_lease,
    compile_locale,
    compile_node_id,
    compile_server,
    compile_silences,
    compile_state,
    compile_state_dir,
    compile_timezone,
)
from bridge.config.targets import compile_targets
from bridge.config.templating import COMMON_VARIABLES, make_environment
from bridge.config.yamlsource import Document, format_path, load_document
from bridge.errors import ConfigError, Problem

INTERNAL_ERROR = "internal error while checking this file"
log = logging.getLogger(__name__)


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
    return compile_document(doc, problems, raw, file, environ)


def compile_document(
    doc: Document, problems: list[Problem], raw: bytes, file: Path, environ: Mapping[str, str]
) -> m.Config:
    """A loaded document (with the problems loading it found) checked and compiled as
    `load_config` does; the console's playground compiles the file with one rule replaced."""
    if doc.data is None:
        raise ConfigError(problems)
    if not isinstance(doc.data, dict):
        raise ConfigError([*problems, doc.problem((), "the top level must be a mapping")])
    env_problems = list(problems)
    expand_presets(doc)  # before the schema: it validates what the presets made
    problems += validate(doc)
    ctx = CompileContext(doc, file, environ)
    config = _compile(ctx, hashlib.sha256(raw).hexdigest())
    problems += ctx.problems
    if doc.unresolved:  # an unset ${VAR} explains everything else wrong with that value
        unresolved = {format_path(p) for p in doc.unresolved}
        problems = [p for p in problems if p in env_problems or p.path not in unresolved]
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: (p.line or 0, p.column or 0)))
    assert config is not None
    return config


def _compile(ctx: CompileContext, file_digest: str) -> m.Config | None:
    data = ctx.doc.data
    server_spec = as_dict(data.get("server"))
    server = compile_server(ctx, server_spec)
    shutdown_timeout = ctx.duration(
        ("server", "shutdown_timeout"), server_spec.get("shutdown_timeout"), 10.0
    )
    tz = compile_timezone(ctx, data.get("timezone"))
    locale = compile_locale(data.get("locale"))
    env = make_environment([ctx.base_dir], tz, locale=locale)
    targets = compile_targets(ctx, as_dict(data.get("targets")))
    # On-call schedules resolve wherever a person does (`oncall:<name>`): the directory holds them.
    oncall = compile_oncall(ctx, data.get("oncall"), tz)
    people = with_oncall(ctx, compile_people(ctx, data.get("people")), oncall)
    targets = compile_recipients(
        ctx,
        targets,
        people,
        lambda at, source: ctx.template(env, at, source, COMMON_VARIABLES),
    )
    inputs = compile_inputs(ctx, as_dict(data.get("inputs")), env, server.max_body_bytes)
    check_console_path(ctx, server.console, inputs)
    rules = compile_rules(ctx, as_list(data.get("rules")), targets, inputs, env, people)
    actions = compile_actions(ctx, data.get("actions"))
    check_rule_actions(ctx, rules, actions)
    check_card_targets(ctx, targets, inputs)
    state_url = compile_state(ctx, data.get("state"))
    node_id = compile_node_id(ctx, data.get("state"))
    longest_call = max((t.timeout for t in targets.values()), default=m.DEFAULT_TIMEOUT)
    claim_lease = compile_claim_lease(ctx, data.get("state"), longest_call)
    if ctx.problems:
        return None
    # The digest covers every file the config reads, so a template edit is a change too, and
    # a rotated secret file takes effect on the next reload. (Only a truncated SHA-256 of it
    # all is ever shown.)
    digest = hashlib.sha256(file_digest.encode())
    for template in sorted(ctx.template_files):
        digest.update(template.read_bytes())
    for path, secret in sorted(ctx.secret_files.items()):
        digest.update(f"\0{path}\0{secret}".encode())
    return m.Config(
        path=ctx.file,
        digest=digest.hexdigest(),
        file_digest=file_digest,
        server=server,
        timezone=tz,
        targets=targets,
        inputs=inputs,
        rules=tuple(rules),
        template_files=tuple(sorted(ctx.template_files)),
        secret_files=tuple(sorted(ctx.secret_files)),
        state_dir=compile_state_dir(ctx, data.get("state_dir")),
        synchronous=str(data.get("synchronous", "normal")),
        state_url=state_url,
        node_id=node_id or nodeid.from_host(),
        node_id_configured=node_id is not None,
        claim_lease=claim_lease,
        silences=compile_silences(ctx, as_list(data.get("silences"))),
        shutdown_timeout=shutdown_timeout,
        alertmanager=compile_alertmanager(ctx, data.get("alertmanager")),
        locale=locale,
        actions=actions,
        people=people,
        oncall=oncall,
    )
