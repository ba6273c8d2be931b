"""One-tap actions (Ack, Silence <d>) taken on an alert: the silence they make and the
follow-up message that says in the chat what was done (its words: alerting/actionwords.py).
Pure; `Desk.act` (desk.py) is the one entry point that takes them, whether the request came
from a signed link (inputs/actionlink.py) or from an interactive-card click over Stream
(app/cardclicks.py).

The permission rule is the chat commands' (app/commands.py): a change needs an allowed sender.
A signed link is its own permission (whoever holds it may do exactly what it says, once, until
it expires), so its caller passes `allowed=True`; a card click passes what the input's allow
list says of the DingTalk user who clicked.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from bridge.alerting.actions import ACK, SILENCE, Grant
from bridge.alerting.matchers import Matcher, equal
from bridge.model import Delivery, Message
from bridge.pipeline.ids import new_id


def silence_matchers(grant: Grant) -> tuple[Matcher, ...]:
    """A silence of exactly the labels the message showed (each equal), as Alertmanager's
    "silence this alert" pre-fills them; for a grouped message, the labels its alerts share."""
    return tuple(equal(k, v) for k, v in sorted(grant.labels.items()))


def follow_ups(grant: Grant, text: str, targets: Iterable[str], now: float) -> list[Delivery]:
    """The follow-up message for each target, queued through the outbox like any alert (paced
    by the target's rate window, retried, never lost)."""
    message = Message(msgtype="text", title=text.split("\n")[0], text=text)
    at = datetime.fromtimestamp(now, UTC)
    return [
        Delivery(
            id=new_id(),
            rule=grant.rule,
            target=target,
            message=message,
            fingerprint=grant.fingerprint,
            created_at=at,
            # In a storm digest it counts with the resolved: it reports an alert dealt with.
            event_status="resolved",
        )
        for target in targets
    ]


def valid(grant: Grant) -> str | None:
    """Why `grant` cannot be acted on (None: it can)."""
    if grant.action not in (ACK, SILENCE):
        return f'unknown action "{grant.action[:40]}"'
    if grant.action == SILENCE and not grant.labels:
        return "the alert has no labels to silence"
    if grant.action == SILENCE and grant.duration <= 0:
        return "a silence must last some time"
    return None
