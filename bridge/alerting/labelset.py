"""A label set as people type one on a command line: `alertname=DiskFull,severity=critical`.

The syntax amtool takes (and Prometheus shows): `name=value` pairs separated by commas, a value
in double quotes when it holds a comma or starts with a space (`summary="disk, 95% full"`, with
`\\"`, `\\\\`, `\\n` and `\\t` escapes), optionally the whole set in braces (`{a="b"}`, pasted from
a Prometheus page). Only `=`: this names one alert's labels, not matchers, so `!=` and `=~` are
refused rather than read as part of a value. Every mistake is a ValueError that says where.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}


def parse_label_set(text: str) -> dict[str, str]:
    """The labels `text` names, in its order; raises ValueError naming the first mistake."""
    body = text.strip()
    if body.startswith("{"):
        if not body.endswith("}"):
            raise ValueError("a label set that opens with { must close with }")
        body = body[1:-1]
    labels: dict[str, str] = {}
    at = _skip_space(body, 0)
    while at < len(body):
        name, at = _name(body, at)
        if name in labels:
            raise ValueError(f'label "{name}" is given twice')
        labels[name], at = _value(body, at, name)
        at = _skip_space(body, at)
        if at < len(body):
            if body[at] != ",":
                raise ValueError(f'after the value of "{name}": expected "," at {body[at:][:20]!r}')
            at = _skip_space(body, at + 1)
            if at == len(body):
                break  # a trailing comma, as Prometheus allows
    return labels


def _skip_space(body: str, at: int) -> int:
    while at < len(body) and body[at].isspace():
        at += 1
    return at


def _name(body: str, at: int) -> tuple[str, int]:
    found = _NAME.match(body, at)
    if found is None:
        raise ValueError(
            f"expected a label name (letters, digits, _; not a digit first) at {body[at:][:20]!r}"
        )
    name = found.group()
    at = _skip_space(body, found.end())
    if body.startswith("!=", at) or body.startswith("=~", at) or body.startswith("!~", at):
        op = body[at : at + 2]
        hint = f'; quote a value that starts with ~ ({name}="~...")' if op == "=~" else ""
        raise ValueError(
            f'"{name}{op}...": labels take "=" only (they name one alert, not matchers){hint}'
        )
    if at >= len(body) or body[at] != "=":
        raise ValueError(f'label "{name}" has no value: write {name}=value')
    return name, _skip_space(body, at + 1)


def _value(body: str, at: int, name: str) -> tuple[str, int]:
    if at < len(body) and body[at] == '"':
        return _quoted(body, at + 1, name)
    end = body.find(",", at)
    end = len(body) if end < 0 else end
    value = body[at:end].rstrip()
    if '"' in value:
        raise ValueError(f'the value of "{name}" has a " inside: quote the whole value')
    return value, end


def _quoted(body: str, at: int, name: str) -> tuple[str, int]:
    chars: list[str] = []
    while at < len(body):
        char = body[at]
        if char == '"':
            return "".join(chars), at + 1
        if char == "\\":
            escaped = body[at + 1 : at + 2]
            if escaped not in _ESCAPES:
                shown = f"\\{escaped}" if escaped else "a lone \\ at the end"
                raise ValueError(
                    f'the value of "{name}": unknown escape {shown} (use \\" \\\\ \\n \\t)'
                )
            chars.append(_ESCAPES[escaped])
            at += 2
            continue
        chars.append(char)
        at += 1
    raise ValueError(f'the value of "{name}" opens a quote that never closes')


def format_label_set(labels: Mapping[str, str]) -> str:
    """`{a="b", c="d"}`, as Alertmanager shows a label set (and parse_label_set reads back)."""
    quoted = (f"{k}={_quote(v)}" for k, v in labels.items())
    return "{" + ", ".join(quoted) + "}"


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\t", "\\t") + '"'
