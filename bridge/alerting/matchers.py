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
