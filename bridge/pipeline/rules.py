"""Which rules an event matches, and why the others do not. Pure: the compiled rules and the
event are all it needs.

Rules are tried in order; a rule matches when its input filter and every matcher hold; the first
match stops the walk unless that rule says `continue: true` (Alertmanager's routing semantics).
The daemon only needs the matches (`matching_rules`); `route` (and anything else that explains a
decision) walks the same rules with `tried`, which also says, for a rule that does not match, the
first thing that failed, and where the walk stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bridge.alerting.matchers import Matcher
from bridge.config.model import Rule
from bridge.model import Event


@dataclass(frozen=True, slots=True)
class Miss:
    """Why a rule does not take an event: the first check that failed, in the rule's order
    (its `inputs` filter, then its matchers as compiled)."""

    other_input: bool = False  # the rule names `inputs` and the event's is not one of them
    matcher: Matcher | None = None  # the first matcher that does not hold
    actual: str | None = None  # the event's value of that matcher's label (None: it has none)


def miss(rule: Rule, event: Event) -> Miss | None:
    """Why `rule` does not take `event`, or None when it does."""
    if rule.inputs is not None and event.input not in rule.inputs:
        return Miss(other_input=True)
    for matcher in rule.matchers:
        if not matcher.matches(event.labels):
            return Miss(matcher=matcher, actual=event.labels.get(matcher.name))
    return None


def tried(rules: Iterable[Rule], event: Event) -> Iterator[tuple[Rule, Miss | None]]:
    """Each rule the walk reaches, with why it does not match (None: it matches), in order; the
    walk ends after the first match that does not `continue`."""
    for rule in rules:
        why = miss(rule, event)
        yield rule, why
        if why is None and not rule.continue_:
            return


def matching_rules(rules: Iterable[Rule], event: Event) -> list[Rule]:
    return [rule for rule, why in tried(rules, event) if why is None]
