"""The desk: what an operator asks of the running bridge, from the chat or the command line.

Silences (added here are kept in the state store and, when an Alertmanager API is configured,
mirrored there), acknowledgements that stop reminders, and the status summary. Chat commands
(`commands.answer`) parse the text and call these; the answer goes back into the conversation
through DingTalk's sessionWebhook. One-tap actions (a signed link, a card click) go through
`act`, which applies the same rules and says in the chat what was done (app/acting.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from bridge.alerting.actions import ACK, Grant
from bridge.alerting.actionwords import card_status
from bridge.alerting.actionwords import done as done_words
from bridge.alerting.grouping import group_key
from bridge.alerting.matchers import Matcher
from bridge.alerting.oncall import Rotation
from bridge.alerting.silences import Silence
from bridge.app import acting, alertmanager_api, commands
from bridge.clock import Clock
from bridge.config.model import ChatInput, Config
from bridge.dingtalk.replies import post_reply
from bridge.inputs.chat import ChatMessage, reply_body
from bridge.locales import Locale, translate
from bridge.logs import fmt_fields
from bridge.pipeline import cardupdates
from bridge.store.api import Store, Tx

log = logging.getLogger("bridge")

Within = Callable[[Tx], None]  # more for a desk transaction to do (remember a link's use)


@dataclass(frozen=True)
class ActResult:
    """What came of a one-tap action: `done` (and then a follow-up was queued), and the words
    for whoever took it."""

    done: bool
    text: str


class Desk:
    def __init__(
        self,
        store: Store,
        config: Callable[[], Config],
        session: requests.Session,
        clock: Clock,
        status: Callable[[], dict[str, Any]],
        silences_changed: Callable[[], None],
        queued: Callable[[Iterable[str]], None] = lambda targets: None,
        locale: Locale | None = None,
    ) -> None:
        """`locale`: the language of the answers; None: the config's, as the chat reads them
        (the command line gives "en": it speaks English whatever the chat does)."""
        self.store = store
        self._config = config
        self.session = session
        self.clock = clock
        self._status = status
        # The intake caches active silences; it must forget them when one is added or ended.
        self._silences_changed = silences_changed
        self._queued = queued  # wakes the senders of targets a follow-up was queued for
        self._locale = locale

    def _words(self, config: Config) -> Locale:
        """The language of the answers (see __init__)."""
        return self._locale or config.locale

    def command(self, spec: ChatInput, message: ChatMessage) -> dict[str, Any]:
        """Answer a command from the chat: into the conversation through its sessionWebhook
        when DingTalk gave one (then the HTTP answer is empty), else as the HTTP answer."""
        config = self._config()
        text = commands.answer(
            message.text,
            message.sender,
            self,
            self.clock.time(),
            config.timezone,
            self._words(config),
        )
        log.info(
            fmt_fields(
                "chat command",
                input=spec.name,
                sender=message.sender.staff_id,
                command=(message.text.split() or ["help"])[0],
                allowed=message.sender.allowed,
            )
        )
        reply = reply_body(text, message.sender)
        if not message.session_webhook:
            return reply
        outcome = post_reply(self.session, message.session_webhook, reply)
        if outcome.ok:
            return {}
        if outcome.errcode is None:
            log.warning(fmt_fields("chat reply failed", input=spec.name, error=outcome.errmsg))
        else:
            log.warning(fmt_fields("chat reply refused", input=spec.name, errcode=outcome.errcode))
        return reply  # DingTalk may still show the answer given in the response

    def status(self) -> dict[str, Any]:
        details = self._status()
        details["silences"] = len(self.silences(self.clock.time()))
        return details

    def oncall(self) -> Mapping[str, Rotation]:
        """The schedules of the config running now (a reload's changes answer at once)."""
        return self._config().oncall

    def silences(self, now: float) -> list[Silence]:
        with self.store.reading() as tx:
            runtime = tx.silences.load(ended_after=now)
        return [s for s in [*self._config().silences, *runtime] if s.active(now)]

    def add_silence(
        self,
        parsed: tuple[Matcher, ...],
        starts: float,
        ends: float,
        comment: str,
        author: str,
        within: Within | None = None,
    ) -> tuple[Silence, str]:
        with self.store.transaction() as tx:
            if within is not None:
                within(tx)
            silence = tx.silences.add(parsed, starts, ends, comment, author, starts)
        self._silences_changed()
        log.info(fmt_fields("silence added", id=silence.id, matchers=silence.describe(), by=author))
        config = self._config()
        locale, api = self._words(config), config.alertmanager
        if api is None:
            return silence, ""
        try:
            am_id = alertmanager_api.create_silence(self.session, api, silence)
        except alertmanager_api.AlertmanagerError as exc:
            log.warning(fmt_fields("alertmanager silence failed", id=silence.id, error=exc))
            return silence, " " + translate(
                locale, "Not in Alertmanager: %(error)s; the bridge's silence holds.", error=exc
            )
        with self.store.transaction() as tx:
            tx.silences.link(silence.id, am_id)
        log.info(fmt_fields("alertmanager silence created", id=silence.id, am_id=am_id))
        return silence, " " + translate(locale, "Also in Alertmanager (%(id)s).", id=am_id)

    def acknowledge(self, short_id: str, by: str, now: float) -> str:
        """The firing alert (group) whose message showed `short_id`: its reminders stop until
        it resolves. Ids are prefixes of the event fingerprint, as `short_id` in templates."""
        return self._acknowledge(short_id, by, now)[1]

    def acknowledged(self, short_id: str, by: str, now: float) -> tuple[bool, str]:
        """`acknowledge`, and whether it did (False: no single firing alert has that id, or
        it was acknowledged before): the console answers a refusal as one."""
        done, text, _ = self._acknowledge(short_id, by, now)
        return done, text

    def _acknowledge(
        self, short_id: str, by: str, now: float, within: Within | None = None
    ) -> tuple[bool, str, set[str]]:
        """`acknowledge`, whether it acknowledged (False: not found, or acked before), and the
        targets whose interactive cards of the alert now say so (updates queued)."""
        config = self._config()
        locale, rules = self._words(config), config.rules_by_name
        carded: set[str] = set()
        with self.store.transaction() as tx:
            if within is not None:
                within(tx)
            found: dict[str, str] = {}  # fingerprint -> rule
            for rule_name, key in tx.alertlog.firing():
                rule = rules.get(rule_name)
                grouped = rule is not None and rule.group_by is not None
                fingerprint = group_key({"rule": rule_name, "group": key}) if grouped else key
                if short_id and fingerprint.startswith(short_id):
                    found[fingerprint] = rule_name
            if len(found) != 1:
                said = (
                    translate(locale, "There is no firing alert with id %(id)s.", id=short_id)
                    if not found
                    else translate(
                        locale,
                        "There are %(count)d firing alerts with id %(id)s.",
                        count=len(found),
                        id=short_id,
                    )
                )
                return False, said, carded
            [(fingerprint, rule_name)] = found.items()
            earlier = tx.acks.acknowledged_by(fingerprint)
            if earlier is None:
                tx.acks.acknowledge(fingerprint, by, now)
                status = card_status(config.locale, ACK, by)
                carded = cardupdates.queue(tx, fingerprint, status, now, config.targets)
        if earlier is not None:
            said = translate(
                locale,
                "%(id)s was already acknowledged by %(who)s.",
                id=fingerprint[:8],
                who=earlier,
            )
            return False, said, carded
        self._queued(carded)
        log.info(fmt_fields("alert acknowledged", id=fingerprint[:8], rule=rule_name, by=by))
        said = translate(
            locale,
            "%(who)s acknowledged %(id)s (rule %(rule)s): no more reminders until it resolves.",
            who=by,
            id=fingerprint[:8],
            rule=rule_name,
        )
        return True, said, carded

    def act(
        self,
        grant: Grant,
        who: str,
        allowed: bool,
        now: float,
        within: Within | None = None,
        source: str = "",
    ) -> ActResult:
        """Take the one-tap action `grant` describes (ack or silence one alert) for `who`, with
        the chat commands' rule: a change needs `allowed` (a signed link is its own permission;
        a card click says what the input's allow list says of its user). `within` runs in the
        action's transaction (a link's single use is remembered there: it commits with the
        action, or not at all); `source` (an address, or "card") goes to the log. Done, it
        queues the follow-up message to the targets the alert's message went to, except those
        whose interactive cards of the alert it updates instead (pipeline/cardupdates.py). No
        HTTP here: the link's page and a Stream card click (app/cardclicks.py) both call this."""
        config = self._config()
        locale = config.locale
        wrong = acting.valid(grant)
        if wrong is not None:
            return ActResult(False, wrong)
        if not allowed:
            return ActResult(False, commands.not_allowed(who, grant.action, locale))
        if grant.action == ACK:
            done, answer, carded = self._acknowledge(grant.fingerprint, who, now, within)
        else:
            carded = set()
            status = card_status(locale, grant.action, who, grant.duration)

            def silence_within(tx: Tx) -> None:  # the cards of the alert say it, in one commit
                if within is not None:
                    within(tx)
                carded.update(cardupdates.queue(tx, grant.fingerprint, status, now, config.targets))

            via = "card" if source == "card" else "link"
            comment = f"one-tap {via} on the {grant.rule} alert {grant.fingerprint[:8]}"
            self.add_silence(
                acting.silence_matchers(grant),
                now,
                now + grant.duration,
                comment,
                who,
                silence_within,
            )
            self._queued(carded)
            done, answer = True, ""
        log.info(
            fmt_fields(
                "one-tap action",
                action=grant.action,
                alert=grant.fingerprint[:8],
                rule=grant.rule,
                by=who,
                source=source or None,
                done=done,
            )
        )
        if not done:
            return ActResult(False, answer)
        text = done_words(locale, grant, who)
        rule = config.rules_by_name.get(grant.rule)
        # A target whose cards of the alert were updated needs no follow-up: the card says it.
        targets = [
            t
            for t in (rule.targets if rule else (grant.target,))
            if t in config.targets and t not in carded
        ]
        if targets:
            with self.store.transaction() as tx:
                tx.outbox.enqueue(acting.follow_ups(grant, text, targets, now), now)
            self._queued(targets)
        return ActResult(True, text)

    def expire_silence(self, id_prefix: str, now: float, by: str = "") -> tuple[list[str], str]:
        with self.store.transaction() as tx:
            ids = tx.silences.expire(id_prefix, now, by)
            am_id = tx.silences.linked(ids[0]) if len(ids) == 1 else None
        self._silences_changed()
        if len(ids) != 1:
            return ids, ""
        log.info(fmt_fields("silence expired", id=ids[0], by=by or None))
        config = self._config()
        locale, api = self._words(config), config.alertmanager
        if api is None or am_id is None:
            return ids, ""
        try:
            alertmanager_api.expire_silence(self.session, api, am_id)
        except alertmanager_api.AlertmanagerError as exc:
            log.warning(fmt_fields("alertmanager expire failed", id=ids[0], error=exc))
            return ids, " " + translate(
                locale, "Still in Alertmanager (%(id)s): %(error)s.", id=am_id, error=exc
            )
        return ids, " " + translate(locale, "Expired in Alertmanager too (%(id)s).", id=am_id)
