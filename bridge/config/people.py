"""The `people:` section: who the config's mentions speak of, by name.

`people:` maps a name to `{mobile, userid, name}` (at least one of mobile and userid); its
`groups:` key maps a group name to people and other groups; its `include:` key names a YAML file
of the same shape (relative to the config, watched by reload like a template file). Rules and
targets then say `alice`, `dba` or `{{ labels.owner }}`, never a phone number.

Compiled into a `Directory` (frozen): each group already flattened to its people, so the
resolver (bridge/alerting/mentions.py) never walks groups at send time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jinja2

from bridge.alerting.oncall import Rotation
from bridge.config.context import CompileContext, as_dict, as_list
from bridge.config.schema import did_you_mean
from bridge.config.yamlsource import Document, PathKey, load_document
from bridge.errors import Problem

ONCALL_PREFIX = "oncall:"  # a ref to an on-call schedule (the oncall section resolves it)
RESERVED = ("groups", "include")  # keys of `people:` that are not people
_MOBILE = re.compile(r"^\+?[0-9][0-9-]{4,19}$")


@dataclass(frozen=True)
class Person:
    key: str  # the name the config uses
    mobile: str = field(default="", repr=False)  # secrets-ish: see mask_mobile
    userid: str = ""
    display: str = ""  # `name:`, how messages and the CLI show them


@dataclass(frozen=True)
class Directory:
    """People by name, and each group flattened to its people's names (in order, once each)."""

    people: Mapping[str, Person] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The `oncall:` schedules, so an `oncall:<name>` ref resolves wherever a name does: who is
    # on call is evaluated when a message is made (bridge/alerting/oncall.lookup).
    oncall: Mapping[str, Rotation] = field(default_factory=dict)

    def knows(self, name: str) -> bool:
        if name.startswith(ONCALL_PREFIX):
            return name.removeprefix(ONCALL_PREFIX) in self.oncall
        return name in self.people or name in self.groups


EMPTY = Directory()


def mask_mobile(mobile: str) -> str:
    """`138****5678`: enough to tell two people apart in a log, not enough to call them."""
    digits = mobile.strip()
    if len(digits) <= 4:
        return "*" * len(digits)
    keep = min(3, max(0, len(digits) - 8))
    return digits[:keep] + "*" * (len(digits) - keep - 4) + digits[-4:]


def compile_people(ctx: CompileContext, raw: Any) -> Directory:
    """The directory from `people:` (and its include file); every problem reported."""
    if raw is None:
        return EMPTY
    spec = as_dict(raw)
    sources: list[tuple[Document, PathKey, dict[str, Any]]] = [(ctx.doc, ("people",), spec)]
    include = spec.get("include")
    if isinstance(include, str):
        included = _load_include(ctx, include)
        if included is not None:
            sources.append(included)
    people: dict[str, Person] = {}
    group_specs: dict[str, tuple[Document, PathKey, list[Any]]] = {}
    for doc, where, section in sources:
        for name, value in section.items():
            if name in RESERVED:
                continue
            at = (*where, name)
            if name in people:
                _problem(ctx, doc, at, f'person "{name}" is defined twice', "keep one of them")
                continue
            person = _person(ctx, doc, at, str(name), value)
            if person is not None:
                people[str(name)] = person
        for name, members in as_dict(section.get("groups")).items():
            at = (*where, "groups", name)
            if name in people or name in group_specs:
                what = "a person" if name in people else "another group"
                _problem(ctx, doc, at, f'group "{name}" has the name of {what}', "rename one")
                continue
            group_specs[str(name)] = (doc, at, as_list(members))
    groups = _flatten_groups(ctx, people, group_specs)
    return Directory(people, groups)


def _problem(ctx: CompileContext, doc: Document, at: PathKey, message: str, hint: str) -> None:
    ctx.problems.append(doc.problem(at, message, hint))


def _person(
    ctx: CompileContext, doc: Document, at: PathKey, name: str, value: Any
) -> Person | None:
    if not isinstance(value, dict):
        if doc is not ctx.doc:  # the main file's schema said so; an include has no schema
            _problem(ctx, doc, at, "a person is a mapping", "e.g. {mobile: '13800000000'}")
        return None
    mobile, userid = value.get("mobile"), value.get("userid")
    mobile = str(mobile) if isinstance(mobile, str | int) and not isinstance(mobile, bool) else ""
    userid = str(userid) if isinstance(userid, str | int) and not isinstance(userid, bool) else ""
    if not mobile and not userid:
        _problem(ctx, doc, at, f'person "{name}" has neither mobile nor userid', "give one or both")
        return None
    if mobile and not _MOBILE.match(mobile):
        _problem(ctx, doc, (*at, "mobile"), "not a mobile number", "digits, e.g. '13800000000'")
        return None
    display = value.get("name")
    return Person(name, mobile, userid, display if isinstance(display, str) else name)


def _load_include(
    ctx: CompileContext, include: str
) -> tuple[Document, PathKey, dict[str, Any]] | None:
    at: PathKey = ("people", "include")
    path = Path(include) if Path(include).is_absolute() else ctx.base_dir / include
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        ctx.problem(at, f"cannot read {path}: {why}", "a YAML file of people and groups")
        return None
    ctx.template_files.add(path.resolve())  # watched and hashed like a template file
    doc, problems = load_document(text, str(path), ctx.environ)
    ctx.problems.extend(problems)
    if doc.data is None:
        return None if problems else (doc, (), {})
    if not isinstance(doc.data, dict):
        ctx.problems.append(
            Problem(str(path), None, None, "", "must be a mapping of people (and groups:)")
        )
        return None
    if "include" in doc.data:
        _problem(ctx, doc, ("include",), "an included file cannot include another", "inline it")
    return doc, (), doc.data


def _flatten_groups(
    ctx: CompileContext,
    people: Mapping[str, Person],
    specs: Mapping[str, tuple[Document, PathKey, list[Any]]],
) -> dict[str, tuple[str, ...]]:
    """Each group as the people it reaches, through nested groups; unknown members and cycles
    reported (a cycle once, at the group where it is found)."""
    known = sorted([*people, *specs])
    for doc, at, members in specs.values():
        for i, member in enumerate(members):
            if not isinstance(member, str) or member.startswith(ONCALL_PREFIX):
                continue
            if member not in people and member not in specs:
                _problem(
                    ctx,
                    doc,
                    (*at, i),
                    f'unknown person or group "{member}"',
                    did_you_mean(member, known) or "define them under people:",
                )
    flat: dict[str, tuple[str, ...]] = {}
    cyclic: set[str] = set()

    def walk(name: str, trail: tuple[str, ...]) -> tuple[str, ...]:
        if name in flat:
            return flat[name]
        if name in trail:
            loop = trail[trail.index(name) :]
            if not cyclic & set(loop):
                doc, at, _ = specs[name]
                _problem(
                    ctx,
                    doc,
                    at,
                    "groups include each other: " + " -> ".join([*loop, name]),
                    "a group may include another only if that one does not lead back",
                )
            cyclic.update(loop)
            return ()
        reached: dict[str, None] = {}
        for member in specs[name][2]:
            if not isinstance(member, str):
                continue
            if member in people or member.startswith(ONCALL_PREFIX):
                reached[member] = None
            elif member in specs:
                reached.update(dict.fromkeys(walk(member, (*trail, name))))
        flat[name] = tuple(reached)
        return flat[name]

    for name in specs:
        walk(name, ())
    return flat


def compile_recipients(
    ctx: CompileContext,
    targets: dict[str, Any],
    directory: Directory,
    template: Callable[[PathKey, str], jinja2.Template | None],
) -> dict[str, Any]:
    """Work-notice targets' `recipients:` (refs, as a rule's mention takes), compiled and
    checked; the targets with them set (the others as they were)."""
    out = dict(targets)
    for name, target in targets.items():
        raw = as_dict(as_dict(ctx.doc.data.get("targets")).get(name)).get("recipients")
        if getattr(target, "type", None) != "work_notice" or not isinstance(raw, list):
            continue
        at: PathKey = ("targets", name, "recipients")
        check_refs(ctx, directory, at, raw)
        refs: list[str | jinja2.Template] = []
        for i, ref in enumerate(raw):
            if isinstance(ref, str) and "{" in ref:
                compiled = template((*at, i), ref)
                if compiled is not None:
                    refs.append(compiled)
            elif isinstance(ref, str):
                refs.append(ref)
        # A digest merges many alerts' messages, each for its own people: a target that has
        # no fixed recipients sends each message on its own instead.
        fixed = target.userids or target.dept_ids or target.to_all_user
        policy = target.policy if fixed else replace(target.policy, digest=False)
        out[name] = replace(target, recipients=tuple(refs), policy=policy)
    return out


def check_refs(ctx: CompileContext, directory: Directory, where: PathKey, refs: list[Any]) -> None:
    """Report the literal names in `refs` the directory does not know: people, groups and
    `oncall:<schedule>` (templates are checked when they render)."""
    known = sorted([*directory.people, *directory.groups, *map(oncall_ref, directory.oncall)])
    for i, ref in enumerate(refs):
        if not isinstance(ref, str) or "{" in ref or directory.knows(ref.strip().lstrip("@")):
            continue
        if ref.startswith(ONCALL_PREFIX):
            ctx.problem(
                (*where, i),
                f'no on-call schedule "{ref.removeprefix(ONCALL_PREFIX)}"',
                did_you_mean(ref, known) or "define it under oncall:",
            )
            continue
        ctx.problem(
            (*where, i),
            f'unknown person or group "{ref}"',
            _hint(ref, known),
        )


_NO_PEOPLE = "no people are defined (people:)"


def _hint(name: str, known: list[str]) -> str:
    return did_you_mean(name, known) or ("known: " + ", ".join(known) if known else _NO_PEOPLE)


def oncall_ref(schedule: str) -> str:
    return f"{ONCALL_PREFIX}{schedule}"


def with_oncall(
    ctx: CompileContext, directory: Directory, schedules: Mapping[str, Rotation]
) -> Directory:
    """The directory that also resolves `oncall:<name>`, once every member of every schedule is
    a person it knows (a member nobody can reach would make an on-call ping that pings nobody)."""
    known = sorted(directory.people)
    for rotation in schedules.values():
        for i, member in enumerate(rotation.members):
            if member not in directory.people:
                ctx.problem(
                    ("oncall", rotation.name, "members", i),
                    f'unknown person "{member}"',
                    _hint(member, known),
                )
        for i, override in enumerate(rotation.overrides):
            if override.member not in directory.people:
                ctx.problem(
                    ("oncall", rotation.name, "overrides", i, "member"),
                    f'unknown person "{override.member}"',
                    _hint(override.member, known),
                )
    for group, members in directory.groups.items():
        for member in members:
            if member.startswith(ONCALL_PREFIX) and member[len(ONCALL_PREFIX) :] not in schedules:
                ctx.problem(
                    ("people", "groups", group),
                    f'no on-call schedule "{member[len(ONCALL_PREFIX) :]}"',
                    "define it under oncall:",
                )
    return replace(directory, oncall=dict(schedules))
