"""An alert's message as an app robot's interactive card, and the messages that change a card
later (bridge/dingtalk/cards.py has DingTalk's bodies). Pure.

A firing single message of a rule whose `actions` include ack or silence goes to a target with
a `card_template_id` as a card: the card's buttons (drawn in the template) are the actions, so
the message's text carries none of the signed links, and the card's variables say what the
template shows (cards.py's docstring lists them). Resolved messages, digests and rules without
actions stay plain robot messages.

A card is changed, once sent, by a message of its own kind: `card_updates` names the cards
(outTrackIds) and `card` the variables to set. It goes through the outbox like any message:
paced by the target's rate window, retried, never lost, and never sent inside a digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from bridge.alerting.actions import ACTIONS
from bridge.config.model import Rule
from bridge.locales import Locale, translate
from bridge.model import Delivery, Event, Message
from bridge.pipeline.actionlinks import runbook_url
from bridge.pipeline.ids import new_id

# What a card's template binds (cards.py): every value a string.
TITLE, MARKDOWN, STATUS, ALERT, RUNBOOK_URL = "title", "markdown", "status", "alert", "runbook_url"
RESOLVED = "Resolved"  # the card's status once its alert resolved (translated when sent)


def wants_card(rule: Rule, event: Event | None) -> bool:
    """Does this rule's message of `event` go as a card (to a target that sends cards)?"""
    return (
        event is not None
        and event.status == "firing"
        and any(name in ACTIONS for name in rule.actions)
    )


def as_card(message: Message, event: Event, locale: Locale) -> Message:
    """`message` (rendered without the signed links) with the variables of its card."""
    params = [
        (TITLE, message.title),
        (MARKDOWN, message.text),
        (STATUS, translate(locale, "Firing")),
        (ALERT, event.fingerprint[:8]),  # what `ack <id>` takes, as templates' short_id
    ]
    runbook = runbook_url(event)
    if runbook:
        params.append((RUNBOOK_URL, runbook))
    return replace(message, card=tuple(params))


def card_update(
    rule: str, target: str, fingerprint: str, tracks: Sequence[str], status: str, now: float
) -> Delivery:
    """The message that sets the status of the cards `tracks` (all of one target)."""
    message = Message(
        msgtype="text",
        title=status,
        text=status,
        card=((STATUS, status),),
        card_updates=tuple(tracks),
    )
    return Delivery(
        id=new_id(),
        rule=rule,
        target=target,
        message=message,
        fingerprint=fingerprint,
        created_at=datetime.fromtimestamp(now, UTC),
        # As the follow-ups: it reports an alert dealt with.
        event_status="resolved",
    )


def localized(message: Message, locale: Locale) -> Message:
    """An update whose status was queued as a word of the catalog (RESOLVED: the pipeline's
    commit knows no locale) in the config's language when sent."""
    if not message.card_updates:
        return message
    card = tuple((k, translate(locale, v) if k == STATUS else v) for k, v in message.card)
    status = dict(card).get(STATUS, message.text)
    return replace(message, card=card, title=status, text=status)
