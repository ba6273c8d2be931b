"""Label matchers and rule selection, as tables."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.alerting import matchers
from bridge.model import Event
from bridge.pipeline.rules import OTHER_INPUT, matching_rules, tried
from tests.harness import compile_yaml

PARSE_CASES = [
    # (matcher text, labels, matches?)
    ("severity=critical", {"severity": "critical"}, True),
    ('severity="critical"', {"severity": "warning"}, False),
    ("severity!=critical", {"severity": "warning"}, True),
    ("severity!=critical", {}, True),
    ("service=~pay.*", {"service": "payments"}, True),
    ("service=~pay.*", {"service": "repay"}, False),  # fully anchored
    ('service=~"pay|bill"', {"service": "bill"}, True),
    ("service!~pay.*", {"service": "repay"}, True),
    ("team=", {}, True),  # a missing label matches the empty string, as in Alertmanager
    ('msg="say \\"hi\\""', {"msg": 'say "hi"'}, True),
]


@pytest.mark.parametrize(("text", "labels", "expected"), PARSE_CASES)
def test_matcher(text: str, labels: dict[str, str], expected: bool) -> None:
    assert matchers.parse(text).matches(labels) is expected


@pytest.mark.parametrize("text", ["severity", "=x", "a=~(", "9a=b"])
def test_bad_matchers_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        matchers.parse(text)


RULES = """
targets:
  ops: {type: robot, webhook: "http://127.0.0.1:1/robot/send?access_token=t"}
  dev: {type: robot, webhook: "http://127.0.0.1:1/robot/send?access_token=u"}
inputs:
  am: {type: alertmanager, path: /am}
  hook: {type: webhook, path: /hook}
rules:
  - {name: pay-critical, inputs: [am], match: {severity: critical}, match_re: {service: "pay.*"},
     targets: [ops], continue: true}
  - {name: critical, match: {severity: critical}, targets: [ops]}
  - {name: not-prod, matchers: ['env!=prod', 'team=~"db|infra"'], targets: [dev]}
  - {name: hooks-only, inputs: [hook], targets: [dev]}
"""

TABLE = [
    # (input, labels, matched rule names in order)
    ("am", {"severity": "critical", "service": "payments"}, ["pay-critical", "critical"]),
    ("am", {"severity": "critical", "service": "repay"}, ["critical"]),
    ("hook", {"severity": "critical", "service": "payments"}, ["critical"]),
    ("am", {"env": "dev", "team": "db"}, ["not-prod"]),
    ("am", {"env": "prod", "team": "db"}, []),
    ("hook", {"env": "prod"}, ["hooks-only"]),
    ("am", {}, []),
]


@pytest.mark.parametrize(("input_name", "labels", "expected"), TABLE)
def test_rules_in_order_first_match_wins_unless_continue(
    tmp_path: Path, input_name: str, labels: dict[str, str], expected: list[str]
) -> None:
    config = compile_yaml(tmp_path, RULES)
    event = Event(
        input=input_name,
        kind="webhook",
        status="firing",
        labels=labels,
        annotations={},
        fingerprint="f",
        received_at=datetime.now(UTC),
    )
    assert [r.name for r in matching_rules(config.rules, event)] == expected


WHY = [
    # (input, labels, each rule the walk reaches: (name, why it does not match; None: it does))
    (
        "am",
        {"severity": "critical", "service": "repay"},
        [("pay-critical", "service=~\"pay.*\" but 'repay'"), ("critical", None)],
    ),
    (
        "hook",
        {"env": "prod"},
        [
            ("pay-critical", "another input"),
            ("critical", 'severity="critical" but none'),  # the first matcher that fails
            ("not-prod", "env!=\"prod\" but 'prod'"),
            ("hooks-only", None),
        ],
    ),
    (
        "am",
        {"severity": "critical", "service": "pay"},
        [("pay-critical", None), ("critical", None)],
    ),
]


@pytest.mark.parametrize(("input_name", "labels", "expected"), WHY)
def test_the_walk_says_why_a_rule_does_not_match_and_where_it_stops(
    tmp_path: Path, input_name: str, labels: dict[str, str], expected: list[tuple[str, str | None]]
) -> None:
    config = compile_yaml(tmp_path, RULES)
    event = Event(input_name, "webhook", "firing", labels, {}, "f", datetime.now(UTC))
    said: list[tuple[str, str | None]] = []
    for rule, why in tried(config.rules, event):
        if why is None:
            said.append((rule.name, None))
        elif why == OTHER_INPUT:
            said.append((rule.name, "another input"))
        else:
            actual = labels.get(why.name)
            said.append((rule.name, f"{why} but {'none' if actual is None else repr(actual)}"))
    assert said == expected
    assert matching_rules(config.rules, event) == [
        r for r in config.rules if (r.name, None) in expected
    ]


def test_a_pattern_python_warns_about_still_compiles_and_matches() -> None:
    """`[[` draws Python's FutureWarning ("possible nested set"); the pattern works as it reads
    today, so neither a matcher nor `check` may fail on it (pytest makes warnings errors here).
    Found by the generated-config suite."""
    from bridge.alerting.matchers import compile_pattern, parse, regex

    assert compile_pattern(r"[[]x").search("a[x")
    assert regex("path", r"[[]x").matches({"path": "[x"})
    assert parse(r"path=~[[]x").matches({"path": "[x"})
