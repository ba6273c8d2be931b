"""Button clicks on the app robot's interactive cards, as DingTalk's Stream connection delivers
them (topic `/v1.0/card/instances/callback`; the cards: dingtalk/cards.py, pipeline/
cardmessage.py).

A click names its card (`outTrackId`: the outbox id of the message it carried), the DingTalk
user and the button's action id. The card leads to the alert (store/cards.py); the action id
becomes the one-tap `Grant` a signed link would carry (`ack`, `silence_<length>` for a length
`actions.silence` offers); `Desk.act` takes it with the chat commands' rule: the user must be
in the allow list (`staff_ids`) of the `dingtalk_robot` input listening on the card's app. The
ack of the frame carries the card's new status, so the card changes at once; the other cards of
the alert are updated through the outbox (Desk.act).

DingTalk may deliver a click again (Stream reference §7): the frame's messageId is claimed in
the action's own transaction (the replay memory), so a click is acted on once. Anything wrong
with a click (not a click, an unknown card or action) gets a 400/404 ack with the reason and a
log line, never an exception. The work runs on the link's socket thread, before the ack: the
answer must say what was done. It is one store transaction (and, for a silence with an
Alertmanager API configured, its mirroring call).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence

from bridge.alerting.actions import ACK, SILENCE, Grant
from bridge.alerting.actionwords import card_status, length_word
from bridge.app.desk import Desk
from bridge.app.streams import Handled
from bridge.clock import Clock
from bridge.config.cardtargets import stream_chat_of
from bridge.config.model import AppRobotTarget, Config
from bridge.dingtalk import cards
from bridge.errors import InputError
from bridge.inputs import streamframes as sf
from bridge.inputs.cardclick import CardClick, parse_click
from bridge.logs import fmt_fields
from bridge.store import records
from bridge.store.api import Store, Tx
from bridge.store.records import Card

log = logging.getLogger("bridge")

CARD_CLICKS = "card-clicks"  # the replay memory's "input" for click frames taken
REMEMBER_CLICK = 86_400.0  # seconds a click's messageId is remembered (redeliveries come sooner)
SILENCE_PREFIX = "silence_"


def grant_for(
    action: str, card: Card, offered: Sequence[str], silences: Sequence[float]
) -> Grant | str:
    """The grant the button `action` of `card` asks for, or why it asks for nothing.
    `offered`: the actions of the card's rule; `silences`: the lengths `actions.silence` offers
    (a button may name only one of them: "silence_1h")."""
    base = Grant("", card.fingerprint, card.rule, card.target, dict(card.labels))
    if action == ACK and ACK in offered:
        return Grant(ACK, base.fingerprint, base.rule, base.target, base.labels)
    if action.startswith(SILENCE_PREFIX) and SILENCE in offered:
        wanted = action.removeprefix(SILENCE_PREFIX)
        for seconds in silences:
            if length_word(seconds) == wanted:
                return Grant(
                    SILENCE, base.fingerprint, base.rule, base.target, base.labels, seconds
                )
        lengths = ", ".join(SILENCE_PREFIX + length_word(s) for s in silences) or "none"
        return f"this bridge offers no {action[:40]} (it offers {lengths})"
    return f'this card offers no action "{action[:40]}"'


class _TakenBefore(Exception):
    """The click's frame was acted on before: roll back, answer without acting again."""


class CardClicks:
    """The handler plugged into the Stream links for the card topic (app/streams.py)."""

    def __init__(
        self, store: Store, config: Callable[[], Config], desk: Desk, clock: Clock
    ) -> None:
        self.store = store
        self._config = config
        self.desk = desk
        self.clock = clock
        self._lock = threading.Lock()
        self.outcomes: Counter[str] = Counter()  # for /metrics: done, refused, not_allowed...

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.outcomes)

    def handle(self, frame: sf.Frame) -> Handled:
        outcome, ack = self._answer(frame)
        with self._lock:
            self.outcomes[outcome] += 1
        return Handled(ack)

    def _answer(self, frame: sf.Frame) -> tuple[str, sf.Ack]:
        try:
            click = parse_click(frame.data)
        except InputError as exc:
            log.warning(fmt_fields("card click refused", reason="bad_click", error=exc))
            return "bad_click", sf.ack(frame.message_id, 400, {"response": None}, str(exc))
        with self.store.reading() as tx:
            card = tx.cards.get(click.out_track_id)
        if card is None:
            return self._refused(frame, click, 404, "unknown_card", "no card of this bridge")
        config = self._config()
        rule = config.rules_by_name.get(card.rule)
        grant = grant_for(click.action, card, rule.actions if rule else (), config.actions.silence)
        if isinstance(grant, str):
            return self._refused(frame, click, 400, "unknown_action", grant)
        target = config.targets.get(card.target)
        chat = (
            stream_chat_of(config.inputs, target.app_key)
            if isinstance(target, AppRobotTarget)
            else None
        )
        allowed = chat is not None and click.user_id in chat.staff_ids
        now = self.clock.time()

        def remember(tx: Tx) -> None:
            seen = tx.replays.claim(
                CARD_CLICKS, frame.message_id, frame.message_id, now + REMEMBER_CLICK, now
            )
            if seen is not records.Seen.NEW:
                raise _TakenBefore

        try:
            result = self.desk.act(grant, click.user_id, allowed, now, remember, source="card")
        except _TakenBefore:
            log.info(fmt_fields("card click taken before", card=card.out_track_id))
            return "taken_before", sf.callback_ack(frame.message_id)
        outcome = "done" if result.done else "not_allowed" if not allowed else "refused"
        status = (
            card_status(config.locale, grant.action, click.user_id, grant.duration)
            if result.done
            else result.text
        )
        log.info(
            fmt_fields(
                "card click",
                by=click.user_id,
                action=click.action,
                alert=card.fingerprint[:8],
                rule=card.rule,
                card=card.out_track_id,
                outcome=outcome,
            )
        )
        return outcome, sf.ack(frame.message_id, 200, cards.click_answer({"status": status}))

    def _refused(
        self, frame: sf.Frame, click: CardClick, code: int, outcome: str, why: str
    ) -> tuple[str, sf.Ack]:
        log.warning(
            fmt_fields(
                "card click refused",
                reason=outcome,
                by=click.user_id,
                action=click.action,
                card=click.out_track_id,
                error=why,
            )
        )
        return outcome, sf.ack(frame.message_id, code, {"response": None}, why)
