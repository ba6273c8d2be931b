"""Queueing the updates of an alert's interactive cards (pipeline/cardmessage.py) in the
transaction that changed the alert: an acknowledgement (app/desk.py: a chat `ack`, a signed
link, a card click), a silence taken from a card or a link, and the alert's resolution
(pipeline/commit.py). An update is an outbox message of the card's target, so it is paced by
the target's rate window and retried like any send, and the click's ack never waits for it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from itertools import groupby

from bridge.model import Delivery
from bridge.pipeline.cardmessage import RESOLVED, card_update
from bridge.store.api import Tx


def queue(tx: Tx, fingerprint: str, status: str, now: float, targets: Collection[str]) -> set[str]:
    """Queue the status `status` for every live card of the alert `fingerprint` sent to one of
    `targets` (the config's: a card of a target removed since has nobody to send its update);
    the targets that got an update."""
    cards = [c for c in tx.cards.live(fingerprint) if c.target in targets]
    if not cards:
        return set()
    key = lambda card: (card.target, card.rule)  # noqa: E731
    updates = [
        card_update(rule, name, fingerprint, [c.out_track_id for c in group], status, now)
        for (name, rule), group in groupby(sorted(cards, key=key), key=key)
    ]
    tx.outbox.enqueue(updates, now)
    return {u.target for u in updates}


def resolved(tx: Tx, deliveries: Iterable[Delivery], now: float) -> None:
    """The cards of the alerts `deliveries` report resolved say so, and are settled: a later
    firing of the alert is a new card."""
    for delivery in deliveries:
        if delivery.event_status != "resolved" or delivery.event is None:
            continue  # a follow-up or a card update (no event) reports nothing new
        fingerprint = delivery.event.fingerprint
        cards = [c for c in tx.cards.live(fingerprint) if c.target == delivery.target]
        if cards:
            queue(tx, fingerprint, RESOLVED, now, {delivery.target})
            tx.cards.settle([c.out_track_id for c in cards], now)
