"""What prometheus-webhook-dingtalk's Go templates name, so `import-pwd` can say what to port.

Go's text/template cannot run here and is not translated: a faithful translation of sprig
pipelines into Jinja is a project of its own, and a half-right one would send wrong messages.
What a migration needs is narrower: which messages used the old bridge's own look (the bundled
`alertmanager.md.j2` replaces it), which used the built-in "legacy" look, and which depended on
the operator's template files or inline template text, and through which `define`d names.

The old bridge parses its built-in `default.tmpl` first and the operator's `templates:` files
after it, so a file that defines a built-in name (say `ding.link.content`) replaces it for every
target whose message reaches that name. The built-in names and what each calls are facts of its
v2 `template/default.tmpl`, recorded in BUILTIN_CALLS.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# The old bridge's built-in templates (v2.x template/default.tmpl): name -> names it calls.
BUILTIN_CALLS: Mapping[str, frozenset[str]] = {
    "__subject": frozenset(),
    "__alertmanagerURL": frozenset(),
    "__text_alert_list": frozenset(),
    "default.__text_alert_list": frozenset(),
    "default.title": frozenset({"__subject"}),
    "default.content": frozenset({"__alertmanagerURL", "default.__text_alert_list"}),
    "legacy.title": frozenset({"__subject"}),
    "legacy.content": frozenset({"__alertmanagerURL", "__text_alert_list"}),
    "ding.link.title": frozenset({"default.title"}),
    "ding.link.content": frozenset({"default.content"}),
}
LEGACY_NAMES = frozenset({"legacy.title", "legacy.content"})
# The message of a target without `message:` when the config has no `default_message`.
DEFAULT_TITLE = '{{ template "ding.link.title" . }}'
DEFAULT_TEXT = '{{ template "ding.link.content" . }}'

# A template name is a Go string: "interpreted" or `raw`.
_NAME = r'(?:"((?:[^"\\]|\\.)*)"|`([^`]*)`)'
_COMMENT = re.compile(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", re.DOTALL)
_DEFINE = re.compile(r"\{\{-?\s*(?:define|block)\s+" + _NAME)
_CALL = re.compile(r"\{\{-?\s*(?:template|block)\s+" + _NAME)
_ONLY_CALL = re.compile(r"\{\{-?\s*template\s+" + _NAME + r"\s*\.?\s*-?\}\}")


def _names(pattern: re.Pattern[str], text: str) -> list[str]:
    return [quoted if quoted is not None else raw for quoted, raw in pattern.findall(text)]


def definitions(text: str) -> dict[str, frozenset[str]]:
    """The names a template file defines, each with the names its body calls.

    A body is taken to run to the next `define` (Go nests `{{ end }}`s, which a scan cannot
    pair without a parser); that over-reaches only into a following definition's calls, which
    at worst lists a name as used that was not, and errs on the side of porting it.
    """
    text = _COMMENT.sub("", text)
    found: dict[str, frozenset[str]] = {}
    starts = list(_DEFINE.finditer(text))
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(text)
        name = match.group(1) if match.group(1) is not None else match.group(2)
        body = text[match.end() : end]
        found[name] = found.get(name, frozenset()) | frozenset(_names(_CALL, body))
    return found


def calls(text: str) -> frozenset[str]:
    """The names a message's `title` or `text` calls with {{ template "NAME" . }}."""
    return frozenset(_names(_CALL, _COMMENT.sub("", text)))


def is_only_calls(text: str) -> bool:
    """Whether `text` is nothing but template calls (the documented way to pick a message):
    anything else is inline Go template text of the operator's, to be ported."""
    return not _ONLY_CALL.sub("", _COMMENT.sub("", text)).strip()


@dataclass(frozen=True)
class Look:
    """What an old message (title and text) was made of.

    `kind` is "default" (the built-in look: the bundled template is its successor), "legacy"
    (the built-in v0.3-style look), "custom" (it reached names from the operator's files) or
    "inline" (its title or text is Go template text of its own). `custom` holds the operator's
    names it reached; `missing` the names it called that nothing defines (a file not found).
    """

    kind: str
    custom: frozenset[str] = frozenset()
    missing: frozenset[str] = frozenset()


def classify(
    title: str, text: str, custom: Mapping[str, frozenset[str]], builtin: bool = True
) -> Look:
    """The look of the message `title`/`text`, given the operator's definitions (`custom`,
    parsed after the built-ins, so they win) and whether the built-ins were loaded at all
    (`no_builtin_template: true` leaves only the operator's)."""
    graph: dict[str, frozenset[str]] = dict(BUILTIN_CALLS) if builtin else {}
    graph.update(custom)
    reached = _closure(calls(title) | calls(text), graph)
    used = frozenset(reached & custom.keys())
    missing = frozenset(reached - graph.keys())
    if not (is_only_calls(title) and is_only_calls(text)):
        return Look("inline", used, missing)
    if used:
        return Look("custom", used, missing)
    if missing:  # it called a name defined in a file that was not found
        return Look("custom", used, missing)
    if reached & LEGACY_NAMES:
        return Look("legacy")
    return Look("default")


def _closure(start: Iterable[str], graph: Mapping[str, frozenset[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph.get(name, ()))
    return seen
