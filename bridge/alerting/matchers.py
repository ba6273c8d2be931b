"""Label matchers, the same four operators Alertmanager uses: =, !=, =~, !~.

Regexes are fully anchored (as in Alertmanager and Prometheus): `pay.*` matches "payments" but not
"repay". A missing label matches as the empty string, again as in Alertmanager.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")
_REGEX_CHARS = re.compile(r"[.*+?()\[\]{}|^$\\]")
MAX_TYPED = 100  # matchers in one silence typed by an operator: more is a paste gone wrong


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str  # one of "=", "!=", "=~", "!~"
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


def compile_pattern(source: str, flags: int = 0) -> re.Pattern[str]:
    """An operator's regular expression, compiled; raises re.error for a bad one. Python's own
    FutureWarnings about a pattern (a "possible nested set" in `[[`) are not errors: the pattern
    works as it reads today, and a warning must not turn into a failure of `check`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return re.compile(source, flags)


def equal(name: str, value: str) -> Matcher:
    return Matcher(name, "=", value)


def regex(name: str, value: str) -> Matcher:
    """A `=~` matcher; raises re.error for a bad pattern."""
    return Matcher(name, "=~", value, compile_pattern(value))


def parse(text: str) -> Matcher:
    """Parse `name=value`, `name!="value"`, `name=~regex`, `name!~"regex"`; raises ValueError."""
    match = _MATCHER.match(text)
    if not match:
        raise ValueError(f'"{text}" is not a matcher (write label=value, !=, =~ or !~)')
    name, op, value = match.groups()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"')
    if op in ("=~", "!~"):
        try:
            return Matcher(name, op, value, compile_pattern(value))
        except re.error as exc:
            raise ValueError(f"bad regular expression {value!r}: {exc}") from exc
    return Matcher(name, op, value)


def all_match(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def parse_typed(text: str) -> tuple[Matcher, str]:
    """`parse`, for what an operator types (the CLI's --match, the console's form): an `=`
    whose value looks like a pattern (`alertname=Disk.*`) means a pattern to nearly everyone
    who types it, so it is matched as `=~`, with a note saying so ("" when none)."""
    matcher = parse(text)
    if matcher.op == "=" and _REGEX_CHARS.search(matcher.value):
        note = f'matching {matcher.name}=~"{matcher.value}" as a regular expression'
        return parse(f'{matcher.name}=~"{matcher.value}"'), note
    return matcher, ""


def split_typed(text: str) -> list[str]:
    """Matchers as pasted: one per line or comma separated, Alertmanager's `{a="1", b=~"x"}`
    too. A comma inside double quotes belongs to the value (`job=~"a{1,3}"`)."""
    text = text.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char in "\n\r" or (char == "," and not quoted):
            parts.append("".join(current))
            current = []
            quoted = False  # a line ends a quote left open: its matcher is the bad one
            continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def parse_all_typed(text: str) -> tuple[tuple[Matcher, ...], list[str], list[str]]:
    """Every matcher in `text` (split_typed, parse_typed): the matchers, the notes, and the
    problems (each bad matcher named; none means the matchers are good)."""
    parsed: list[Matcher] = []
    notes: list[str] = []
    problems: list[str] = []
    pieces = split_typed(text)
    if not pieces:
        problems.append("write at least one matcher, e.g. alertname=DiskFull")
    if len(pieces) > MAX_TYPED:
        problems.append(f"at most {MAX_TYPED} matchers in one silence")
        pieces = pieces[:MAX_TYPED]
    for piece in pieces:
        try:
            matcher, note = parse_typed(piece)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        parsed.append(matcher)
        if note:
            notes.append(note)
    if parsed and not problems and all(m.matches({}) for m in parsed):
        # Alertmanager refuses these too: a silence that matches even no labels silences all.
        problems.append("these matchers match every alert; add one that needs a label value")
    return tuple(parsed), notes, problems
