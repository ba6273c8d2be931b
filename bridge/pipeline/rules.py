"""Which rules an event matches, and why the others do not. Pure: the compiled rules and the
event are all it needs.

Rules are tried in order; a rule matches when its input filter and every matcher hold; the first
match stops the walk unless that rule says `continue: true` (Alertmanager's routing semantics).
The daemon only needs the matches (`matching_rules`, on every event: no allocation per rule);
`route` (and anything else that explains a decision) walks the same rules with `tried`, which
also says, for a rule that does not match, the first thing that failed, and where the walk
stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Final, Literal

from bridge.alerting.matchers import Matcher
from bridge.config.model import Rule
from bridge.model import Event

OTHER_INPUT: Final = "other input"
# Why a rule does not take an event: the first check that failed, in the rule's order: its
# `inputs` filter (OTHER_INPUT), then its matchers as compiled (the first that does not hold).
Miss = Matcher | Literal["other input"]


def miss(rule: Rule, event: Event) -> Miss | None:
    """Why `rule` does not take `event`, or None when it does."""
    if rule.inputs is not None and event.input not in rule.inputs:
        return OTHER_INPUT
    labels = event.labels
    for matcher in rule.matchers:
        if not matcher.matches(labels):
            return matcher
    return None


def matching_rules(rules: Iterable[Rule], event: Event) -> list[Rule]:
    matched: list[Rule] = []
    for rule in rules:
        if miss(rule, event) is None:
            matched.append(rule)
            if not rule.continue_:
                break
    return matched


def tried(rules: Sequence[Rule], event: Event) -> Iterator[tuple[Rule, Miss | None]]:
    """Each rule the walk reaches, with why it does not match (None: it matches), in order: the
    walk of matching_rules, which ends after the first match that does not `continue`."""
    for rule in rules:
        why = miss(rule, event)
        yield rule, why
        if why is None and not rule.continue_:
            return
