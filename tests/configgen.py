"""Hostile config documents, for the hypothesis suite (tests/test_config_hypothesis.py) and the
long fuzz run (bench/fuzz.py).

The generators are plain functions of a `random.Random`, so bench/fuzz.py can draw thousands of
documents quickly; the hypothesis strategies wrap them (`st.randoms()` drives the same code and
hypothesis still replays and shrinks the seed).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from bridge.config.yamlsource import load_document

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "tests" / "configs"
ENVIRON: dict[str, str] = {}  # nothing from the machine: every ${VAR} takes its default or fails


def _bases() -> dict[str, dict[str, Any]]:
    """The example and every test config that reads as a mapping (through the bridge's bounded
    loader: yaml.safe_load would expand the alias-bomb fixtures)."""
    paths = [ROOT / "config.example.yaml", *sorted(CONFIGS.glob("*/*.yaml"))]
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        doc, _ = load_document(path.read_text("utf-8"), str(path), {})
        if isinstance(doc.data, dict):
            # Keep ${VAR} unexpanded where the file had it: re-read the raw text for that.
            try:
                raw = yaml.safe_load(path.read_text("utf-8"))
            except Exception:  # a tag that does not fit its value: PyYAML raises anything
                raw = doc.data
            out[str(path.relative_to(ROOT))] = raw if isinstance(raw, dict) else doc.data
    return out


BASES = _bases()

# Keys the schema knows, so mutations also hit the meaningful places, not only unknown keys.
KEYS = sorted(
    {
        "server", "listen", "max_body_bytes", "threads", "connection_limit", "idle_timeout",
        "shutdown_timeout", "reload_token", "reload_token_file", "timezone", "state_dir",
        "synchronous", "silences", "matchers", "starts_at", "ends_at", "comment", "alertmanager",
        "url", "timeout", "targets", "type", "webhook", "webhook_file", "secret", "secret_file",
        "keywords", "rate_limit", "messages", "per", "lockout", "digest", "enabled", "after",
        "max_alerts", "retry", "initial", "max", "give_up_after", "oversize", "queue_size",
        "app_key", "app_secret", "app_secret_file", "agent_id", "userids", "dept_ids",
        "to_all_user", "api_base", "inputs", "path", "token", "token_file", "labels",
        "annotations", "split", "paths", "dedup_window", "exclude", "read_from", "patterns",
        "regex",
        "multiline", "start", "max_lines", "threshold", "count", "within", "max_line_bytes",
        "poll_interval", "rotate_wait", "close_inactive", "max_open_files", "inotify",
        "aes_key", "owner_key", "max_age", "allow", "staff_ids", "admins", "rules", "name",
        "match", "match_re", "continue", "msgtype", "title", "template", "buttons", "mention",
        "mobiles", "all", "group_by", "group_wait", "group_interval", "repeat_interval",
        "send_resolved", "btn_orientation", "pic_url",
    }
)  # fmt: skip

ODD_TEXT = [
    "",
    " ",
    "none",
    "${BRIDGE_FUZZ_UNSET}",
    "${BRIDGE_FUZZ_UNSET:-}",
    "${BRIDGE_FUZZ_UNSET:-none}",
    "$${literal}",
    "${",
    "999999999d",
    "366d",
    "30d",
    "0s",
    "-1s",
    "1e400s",
    "0.0000001ms",
    "9" * 400 + "d",
    "America",
    "Asia/" + "x" * 300,
    "../../../../etc/passwd",
    "/dev/zero",
    "/",
    "a\nb",
    "tab\there",
    "nul\x00byte",
    "bell\x07esc\x1b[31m",
    "\u2028line\u2029sep",
    "\ufeffbom",
    "\U0001f525 emoji",
    "\u202eright-to-left",
    "中文告警",
    "é" * 50,
    "{{ labels.alertname }}",
    "{{ undefined_variable }}",
    "{% for x in range(10) %}{{ x }}{% endfor %}",
    "{{",
    "{% raw %}",
    "(a+)+$",
    "[",
    "*",
    "alertname=~",
    'alertname="x"',
    "127.0.0.1:8060",
    "[::1]:99999",
    "host:",
    "http://",
    "https://oapi.dingtalk.com/robot/send?access_token=",
    "https://oapi.dingtalk.com/robot/send?access_token=fuzz-token",
    "x" * 5000,
    "2026-12-01T08:00:00",
    "2026-12-01T08:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "robot",
    "work_notice",
    "alertmanager",
    "webhook",
    "file",
    "dingtalk_callback",
    "dingtalk_robot",
    "grafana",
    "markdown",
    "actionCard",
    "feedCard",
    "custom.md.j2",
    "missing.j2",
]
ODD_NUMBERS: list[Any] = [
    0,
    -1,
    1,
    2**31,
    2**63,
    10**30,
    -(10**30),
    0.5,
    -0.0,
    1e308,
    float("inf"),
    float("-inf"),
    float("nan"),
    True,
    False,
    None,
]


def scalar(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.45:
        return rng.choice(ODD_TEXT)
    if roll < 0.75:
        return rng.choice(ODD_NUMBERS)
    if roll < 0.9:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(0, 12)))
    return rng.randrange(-(10**6), 10**6)


def value(rng: random.Random, depth: int = 0) -> Any:
    """Any YAML-representable value, mostly small."""
    roll = rng.random()
    if depth > 4 or roll < 0.55:
        return scalar(rng)
    if roll < 0.75:
        return [value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    keys = [rng.choice(KEYS) if rng.random() < 0.7 else str(scalar(rng)) for _ in range(4)]
    return {k: value(rng, depth + 1) for k in keys[: rng.randrange(0, 5)]}


def nested(rng: random.Random) -> Any:
    """Deep nesting: some depth a config may have, some it may not."""
    depth = rng.choice([10, 50, 63, 64, 65, 100, 150])  # (deeper: HOSTILE_SNIPPETS, as text)
    inner: Any = scalar(rng)
    for _ in range(depth):
        inner = [inner] if rng.random() < 0.5 else {"k": inner}
    return inner


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            out += _paths(child, (*prefix, index))
    return out


def _set(root: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    parent = root
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = new
    return root


def mutate(rng: random.Random, base: dict[str, Any], count: int | None = None) -> Any:
    """`base` (deep-copied) with a few random changes at random places."""
    doc: Any = yaml.safe_load(yaml.safe_dump(base, allow_unicode=True))  # a deep copy
    for _ in range(count if count is not None else rng.randrange(1, 4)):
        paths = _paths(doc)
        path = rng.choice(paths)
        target: Any = doc
        for part in path:
            target = target[part]
        op = rng.random()
        if op < 0.4:
            doc = _set(doc, path, value(rng))
        elif op < 0.55 and path:
            parent: Any = doc
            for part in path[:-1]:
                parent = parent[part]
            del parent[path[-1]]
        elif op < 0.7 and isinstance(target, dict):
            target[rng.choice(KEYS) if rng.random() < 0.8 else str(scalar(rng))] = value(rng)
        elif op < 0.8:
            doc = _set(doc, path, [target] if rng.random() < 0.5 else {"x": target})
        elif op < 0.9:
            doc = _set(doc, path, nested(rng))
        else:
            doc = _set(doc, path, scalar(rng))
    return doc


def random_document(rng: random.Random) -> Any:
    """A random structure, often shaped like a config (its top-level keys)."""
    if rng.random() < 0.3:
        return value(rng)
    top = ["server", "timezone", "targets", "inputs", "rules", "silences", "state_dir"]
    return {k: value(rng, 1) for k in rng.sample(top, rng.randrange(1, len(top) + 1))}


GOOD_BASES = sorted(n for n in BASES if "/bad/" not in n and "/bugs/" not in n)


def mutated_document(rng: random.Random) -> Any:
    """A base config with a few changes; half the time a valid one (example, good/), so the
    compiler's deeper checks run too, not only the first complaint of a broken fixture."""
    name = rng.choice(GOOD_BASES if rng.random() < 0.5 else sorted(BASES))
    return mutate(rng, BASES[name], count=rng.choice([1, 1, 1, 2, 3]))


# YAML text that only a text-level splice produces: aliases, merges, tags, directives, escapes.
HOSTILE_SNIPPETS = [
    "lol0: &l0 [a, a, a, a, a, a, a, a, a]\n"
    + "".join(f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)),
    "m0: &m0 {k: 1}\n"
    + "".join(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}]}}\n" for i in range(1, 40)),
    "cyc: &cyc {self: *cyc}",
    "merge_scalar: {<<: 1}",
    "merge_list_scalar: {<<: [1, 2]}",
    "deep: " + "[" * 600 + "]" * 600,
    "deepmap: " + "{a: " * 300 + "1" + "}" * 300,
    "tagged: !!binary aGVsbG8=",
    "tagged_int: !!int not-a-number",
    "tagged_float: !!float nope",
    "tagged_ts: !!timestamp yesterday",
    "tagged_set: !!set {a, b}",
    "tagged_omap: !!omap [a: 1, b: 2]",
    "python: !!python/object/apply:os.system ['true']",
    "custom: !mytag value",
    "? [complex, key]\n: value",
    "? {complex: key}\n: value",
    'surrogate: "\\ud800\\udfff\\ud800"',
    'escapes: "\\x00\\x1b\\u2028\\U0001F525"',
    "bigint: " + "9" * 5000,
    "bighex: 0x" + "f" * 5000,
    "bigfloat: 1e99999",
    "sexagesimal: 190:20:30",
    "octal: 0o777",
    "yes_no: [yes, no, on, off, y, n]",
    "dup: 1\ndup: 2",
    "undefined_alias: *nowhere",
    "anchor_only: &a",
    "%YAML 1.1\n---",
    "---\nsecond: document",
    "...",
    "\t tab_indent: 1",
    "'unterminated: quote",
    '"unterminated: quote',
    "key: [unclosed",
    "key: {unclosed",
    "null_key: {~: 1, null: 2}",
    "numeric_keys: {1: a, 2.5: b, true: c}",
    "\x00",
    "\ufeffbom: 1",
    "long_key_" + "k" * 2000 + ": 1",
]


def spliced_text(rng: random.Random) -> str:
    """A real config's text with hostile snippets spliced in at line boundaries."""
    name = rng.choice(sorted(BASES))
    text = (ROOT / name).read_text("utf-8") if rng.random() < 0.5 else _dump(BASES[name])
    lines = text.splitlines()
    for _ in range(rng.randrange(1, 3)):
        at = rng.randrange(0, len(lines) + 1)
        snippet = rng.choice(HOSTILE_SNIPPETS)
        indent = " " * rng.choice([0, 0, 2, 4]) if at else ""
        lines[at:at] = [indent + line for line in snippet.splitlines()]
    return "\n".join(lines) + "\n"


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def _from_random(gen: Callable[[random.Random], Any]) -> st.SearchStrategy[Any]:
    return st.randoms(use_true_random=False).map(gen)


def documents() -> st.SearchStrategy[Any]:
    return _from_random(random_document)


def mutated_documents() -> st.SearchStrategy[Any]:
    return _from_random(mutated_document)


def spliced_texts() -> st.SearchStrategy[str]:
    return _from_random(spliced_text)
