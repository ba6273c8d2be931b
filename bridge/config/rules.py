"""The `rules` section: which events go to which targets, and the templates of their messages.

What a rule may use depends on the kinds of its inputs (bridge/config/inputs/registry.py): their
template variables, the default title and body, the default repeat_interval.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from bridge.alerting import matchers
from bridge.config import model as m
from bridge.config.actions import rule_actions
from bridge.config.context import CompileContext, as_dict, as_list, as_strs
from bridge.config.escalation import rule_escalation
from bridge.config.inputs.registry import rule_variables, single
from bridge.config.people import EMPTY, Directory, check_refs
from bridge.config.presets import Preset, presets
from bridge.config.templating import COMMON_VARIABLES, referenced_templates, undeclared_variables
from bridge.config.yamlsource import PathKey
from bridge.model import Mention, MsgType

# A group that mixes alertnames (so `alertname` is not a common label) is titled by all of them.
# An `if`, not `default(...)`: a filter's argument is computed even when it is not used, and a
# storm's digest renders this title for every alert it lists.
DEFAULT_TITLE = (
    "[{{ _(status | upper) }}{% if firing | length > 1 %} ×{{ firing | length }}{% endif %}] "
    "{% if labels.alertname is defined %}{{ labels.alertname }}{% else %}"
    "{{ (alerts | map(attribute='labels.alertname', default='') | select | unique"
    " | join(', ')) or input }}{% endif %}"
)
DEFAULT_BODY = "default"  # the bundled dispatcher, for rules fed by inputs of several kinds


def compile_rules(
    ctx: CompileContext,
    specs: list[Any],
    targets: dict[str, m.Target],
    inputs: dict[str, m.Input],
    env: SandboxedEnvironment,
    people: Directory = EMPTY,
) -> list[m.Rule]:
    out: list[m.Rule] = []
    names: dict[str, int] = {}
    # Names declared in the file count even when their definitions are broken (already
    # reported): a rule naming them is not wrong too. A missing section checks nothing.
    declared_targets = ctx.doc.data.get("targets")
    declared_inputs = ctx.doc.data.get("inputs")
    target_names = sorted(declared_targets) if isinstance(declared_targets, dict) else None
    input_names = sorted(declared_inputs) if isinstance(declared_inputs, dict) else None
    for index, raw in enumerate(specs):
        spec, where = as_dict(raw), ("rules", index)
        name = str(spec.get("name", f"rule-{index}"))
        if name in names:
            ctx.problem(
                (*where, "name"), f'rule name "{name}" is already used by rules[{names[name]}]'
            )
        names[name] = index

        rule_inputs = as_strs(spec.get("inputs")) if "inputs" in spec else None
        ctx.unknown_names((*where, "inputs"), rule_inputs or (), input_names, "input")
        rule_targets = as_strs(spec.get("targets"))
        ctx.unknown_names((*where, "targets"), rule_targets, target_names, "target")

        msgtype: MsgType = spec.get("msgtype", "markdown")
        _check_msgtype(
            ctx, where, spec, msgtype, [targets[t] for t in rule_targets if t in targets]
        )
        kinds = {inputs[i].type for i in (rule_inputs or input_names or ()) if i in inputs}
        allowed = COMMON_VARIABLES | rule_variables(kinds)
        only = single(kinds)

        def tpl(
            source: Any, at: PathKey, allowed: frozenset[str] = allowed
        ) -> jinja2.Template | None:
            return ctx.template(env, at, source, allowed)

        preset = _single_preset(
            inputs[i] for i in (rule_inputs or input_names or ()) if i in inputs
        )
        default_title = only.default_title if only and only.default_title else DEFAULT_TITLE
        if preset is not None and preset.title:
            default_title = preset.title
        default_body = preset.body if preset else only.default_body if only else None
        title_source = spec.get("title", default_title)
        title = tpl(title_source, (*where, "title"))
        body = _body_template(ctx, env, where, spec, msgtype, allowed, default_body)
        buttons = []
        for i, button in enumerate(as_list(spec.get("buttons"))):
            b = as_dict(button)
            bt = tpl(b.get("title"), (*where, "buttons", i, "title"))
            bu = tpl(b.get("url"), (*where, "buttons", i, "url"))
            if bt and bu:
                buttons.append(m.ButtonTemplate(bt, bu))
        raw_mention = spec.get("mention")
        mention = as_dict(raw_mention)
        refs = _mention_refs(ctx, where, raw_mention, people, tpl)
        out.append(
            m.Rule(
                name=name,
                index=index,
                inputs=frozenset(rule_inputs) if rule_inputs is not None else None,
                matchers=_matchers(ctx, where, spec),
                targets=rule_targets,
                continue_=spec.get("continue") is True,
                msgtype=msgtype,
                title=title or env.from_string(""),
                title_is_default=title_source == DEFAULT_TITLE,
                body=body or env.from_string(""),
                url=tpl(spec.get("url"), (*where, "url")),
                pic_url=tpl(spec.get("pic_url"), (*where, "pic_url")),
                buttons=tuple(buttons),
                btn_orientation=str(spec.get("btn_orientation", "0")),
                mention=Mention(
                    mobiles=as_strs(mention.get("mobiles")),
                    userids=as_strs(mention.get("userids")),
                    all=mention.get("all") is True,
                ),
                mention_refs=refs,
                people=people,
                group_by=as_strs(spec["group_by"]) if "group_by" in spec else None,
                group_wait=ctx.duration((*where, "group_wait"), spec.get("group_wait"), 30.0),
                group_interval=ctx.duration(
                    (*where, "group_interval"), spec.get("group_interval"), 300.0
                ),
                # A rule fed only by a source that decides repeats itself (Alertmanager's own
                # repeat_interval) passes every notification on unless told otherwise.
                repeat_interval=ctx.duration(
                    (*where, "repeat_interval"),
                    spec.get("repeat_interval"),
                    0.0 if only and only.repeats_itself else 14_400.0,
                ),
                send_resolved=spec.get("send_resolved") is not False,
                recall_singles_after_digest=_recall_singles(
                    ctx, where, spec, [targets[t] for t in rule_targets if t in targets]
                ),
                actions=rule_actions(ctx, where, spec),
                escalate=rule_escalation(ctx, where, spec, target_names, people),
            )
        )
    return out


def _mention_refs(
    ctx: CompileContext,
    where: PathKey,
    raw: Any,
    people: Directory,
    tpl: Callable[[Any, PathKey], jinja2.Template | None],
) -> m.MentionRefs:
    """`mention: [refs]` (pinged when it fires) or `mention: {firing: [refs], resolved: [refs]}`
    beside the fixed mobiles/userids/all. A literal name must be in `people:`; a template is
    checked for its variables here and resolved per message."""

    def compiled(at: PathKey, values: Any) -> tuple[m.MentionRef, ...]:
        out: list[m.MentionRef] = []
        for i, ref in enumerate(as_list(values)):
            if not isinstance(ref, str):
                continue  # the schema says so
            if "{" in ref:
                template = tpl(ref, (*at, i))
                if template is not None:
                    out.append(template)
            else:
                out.append(ref)
        check_refs(ctx, people, at, as_list(values))
        return tuple(out)

    at = (*where, "mention")
    if isinstance(raw, list):
        return m.MentionRefs(firing=compiled(at, raw))
    spec = as_dict(raw)
    return m.MentionRefs(
        firing=compiled((*at, "firing"), spec.get("firing")),
        resolved=compiled((*at, "resolved"), spec.get("resolved")),
    )


def _recall_singles(
    ctx: CompileContext, where: PathKey, spec: dict[str, Any], targets: list[m.Target]
) -> float | None:
    """`recall_singles_after_digest`: true (the default look-back), a duration, or off."""
    value = spec.get("recall_singles_after_digest")
    if value is None or value is False:
        return None
    at = (*where, "recall_singles_after_digest")
    if not any(t.type == "app_robot" for t in targets):
        ctx.problem(
            at,
            "only app_robot targets can recall messages (DingTalk has no recall for custom"
            " robots' webhook messages)",
            "send this rule to an app_robot target, or drop the option",
        )
    return m.DEFAULT_STORM_LOOKBACK if value is True else ctx.duration(at, value, 0.0)


def _check_msgtype(
    ctx: CompileContext, where: PathKey, spec: dict[str, Any], msgtype: str, targets: list[m.Target]
) -> None:
    if spec.get("mention") and msgtype not in ("text", "markdown"):
        ctx.problem(
            (*where, "mention"),
            f"DingTalk ignores mentions in {msgtype} messages",
            "use msgtype text or markdown",
        )
    if msgtype == "link" and "url" not in spec:
        ctx.problem(where, 'a link message needs "url"', 'e.g. url: "{{ alerts[0].generatorURL }}"')
    if msgtype == "actionCard" and "url" not in spec and "buttons" not in spec:
        ctx.problem(where, 'an actionCard needs "url" (one button) or "buttons"')
    if "buttons" in spec and msgtype != "actionCard":
        ctx.problem((*where, "buttons"), "buttons are only shown on actionCard messages")
    if msgtype == "feedCard":
        for target in targets:
            if target.type in ("work_notice", "app_robot"):
                what = "work notices" if target.type == "work_notice" else "app robots"
                ctx.problem(
                    (*where, "msgtype"),
                    f'{what} cannot carry feedCard (target "{target.name}")',
                )


def _matchers(
    ctx: CompileContext, where: PathKey, spec: dict[str, Any]
) -> tuple[matchers.Matcher, ...]:
    out = [matchers.equal(k, str(v)) for k, v in as_dict(spec.get("match")).items()]
    for label, pattern in as_dict(spec.get("match_re")).items():
        try:
            out.append(matchers.regex(label, str(pattern)))
        except re.error as exc:
            ctx.problem((*where, "match_re", label), f"bad regular expression: {exc}")
    for i, text in enumerate(as_list(spec.get("matchers"))):
        try:
            out.append(matchers.parse(str(text)))
        except ValueError as exc:
            ctx.problem((*where, "matchers", i), str(exc))
    return tuple(out)


def _single_preset(inputs: Iterable[m.Input]) -> Preset | None:
    """The preset every input of a rule was made from, when they share one: its title and
    bodies are the rule's defaults (a rule over inputs of several sources uses the kinds')."""
    names = {getattr(spec, "preset", None) for spec in inputs}
    if len(names) != 1:
        return None
    name = names.pop()
    return presets().get(name) if isinstance(name, str) else None


def _body_template(
    ctx: CompileContext,
    env: SandboxedEnvironment,
    where: PathKey,
    spec: dict[str, Any],
    msgtype: str,
    allowed: frozenset[str],
    kind_body: str | None,
) -> jinja2.Template | None:
    at = (*where, "template")
    source = spec.get("template")
    if source is None:  # the bundled default of the inputs' kind (several kinds: a dispatcher)
        # (Choosing here saves the dispatcher's include on every render.)
        suffix = "txt" if msgtype in ("text", "link") else "md"
        return env.get_template(f"{kind_body or DEFAULT_BODY}.{suffix}.j2")
    if not isinstance(source, str):
        return None
    if not looks_like_file(source):
        return ctx.template(env, at, source, allowed)
    local = ctx.base_dir / source
    try:
        template = env.get_template(source)
    except jinja2.TemplateNotFound:
        ctx.problem(
            at,
            f'template file "{source}" not found',
            f"looked in {ctx.base_dir} and the bundled templates",
        )
        return None
    except jinja2.TemplateSyntaxError as exc:
        ctx.problem(
            at,
            f"template syntax error in {source}: {exc.message}",
            f"{source} line {exc.lineno}",
        )
        return None
    if local.is_file():
        ctx.template_files.add(local.resolve())
        _check_file_variables(ctx, env, at, source, allowed, set())
    return template


def _check_file_variables(
    ctx: CompileContext,
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
    local = ctx.base_dir / name
    if not local.is_file():
        return  # a bundled template: covered by the project's own tests
    ctx.template_files.add(local.resolve())
    source = local.read_text("utf-8")
    for var in sorted(undeclared_variables(env, source) - allowed):
        ctx.unknown_variable(at, var, allowed, f"template {name}")
    for child in referenced_templates(env, source):
        _check_file_variables(ctx, env, at, child, allowed, seen)


def looks_like_file(source: str) -> bool:
    return "\n" not in source and "{" not in source and source.rstrip().endswith((".j2", ".tmpl"))
