"""Which rules an event matches. Pure: the compiled rules and the event are all it needs.

Rules are tried in order; a rule matches when its input filter and every matcher hold; the first
match stops the walk unless that rule says `continue: true` (Alertmanager's routing semantics).
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge.alerting.matchers import all_match
from bridge.config.model import Rule
from bridge.model import Event


def matching_rules(rules: Iterable[Rule], event: Event) -> list[Rule]:
    matched: list[Rule] = []
    for rule in rules:
        if rule.inputs is not None and event.input not in rule.inputs:
            continue
        if not all_match(rule.matchers, event.labels):
            continue
        matched.append(rule)
        if not rule.continue_:
            break
    return matched
