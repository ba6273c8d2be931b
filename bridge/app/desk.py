"""The desk: what an operator asks of the running bridge, from the chat or the command line.

Silences (added here are kept in the state store and, when an Alertmanager API is configured,
mirrored there), acknowledgements that stop reminders, and the status summary. Chat commands
(`commands.answer`) parse the text and call these; the answer goes back into the conversation
through DingTalk's sessionWebhook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import requests

from bridge.alerting.grouping import group_key
from bridge.alerting.matchers import Matcher
from bridge.alerting.silences import Silence
from bridge.app import alertmanager_api, commands
from bridge.clock import Clock
from bridge.config.model import ChatInput, Config
from bridge.dingtalk.replies import post_reply
from bridge.inputs.chat import ChatMessage, reply_body
from bridge.logs import fmt_fields
from bridge.store.api import Store

log = logging.getLogger("bridge")


class Desk:
    def __init__(
        self,
        store: Store,
        config: Callable[[], Config],
        session: requests.Session,
        clock: Clock,
        status: Callable[[], dict[str, Any]],
        silences_changed: Callable[[], None],
    ) -> None:
        self.store = store
        self._config = config
        self.session = session
        self.clock = clock
        self._status = status
        # The intake caches active silences; it must forget them when one is added or ended.
        self._silences_changed = silences_changed

    def command(self, spec: ChatInput, message: ChatMessage) -> dict[str, Any]:
        """Answer a command from the chat: into the conversation through its sessionWebhook
        when DingTalk gave one (then the HTTP answer is empty), else as the HTTP answer."""
        config = self._config()
        text = commands.answer(
            message.text, message.sender, self, self.clock.time(), config.timezone
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
    ) -> tuple[Silence, str]:
        with self.store.transaction() as tx:
            silence = tx.silences.add(parsed, starts, ends, comment, author, starts)
        self._silences_changed()
        log.info(fmt_fields("silence added", id=silence.id, matchers=silence.describe(), by=author))
        api = self._config().alertmanager
        if api is None:
            return silence, ""
        try:
            am_id = alertmanager_api.create_silence(self.session, api, silence)
        except alertmanager_api.AlertmanagerError as exc:
            log.warning(fmt_fields("alertmanager silence failed", id=silence.id, error=exc))
            return silence, f" Not in Alertmanager: {exc}; the bridge's silence holds."
        with self.store.transaction() as tx:
            tx.silences.link(silence.id, am_id)
        log.info(fmt_fields("alertmanager silence created", id=silence.id, am_id=am_id))
        return silence, f" Also in Alertmanager ({am_id})."

    def acknowledge(self, short_id: str, by: str, now: float) -> str:
        """The firing alert (group) whose message showed `short_id`: its reminders stop until
        it resolves. Ids are prefixes of the event fingerprint, as `short_id` in templates."""
        rules = self._config().rules_by_name
        with self.store.transaction() as tx:
            found: dict[str, str] = {}  # fingerprint -> rule
            for rule_name, key in tx.alertlog.firing():
                rule = rules.get(rule_name)
                grouped = rule is not None and rule.group_by is not None
                fingerprint = group_key({"rule": rule_name, "group": key}) if grouped else key
                if short_id and fingerprint.startswith(short_id):
                    found[fingerprint] = rule_name
            if len(found) != 1:
                what = "no firing alert" if not found else f"{len(found)} firing alerts"
                return f"There is {what} with id {short_id}."
            [(fingerprint, rule_name)] = found.items()
            earlier = tx.acks.acknowledged_by(fingerprint)
            if earlier is None:
                tx.acks.acknowledge(fingerprint, by, now)
        if earlier is not None:
            return f"{fingerprint[:8]} was already acknowledged by {earlier}."
        log.info(fmt_fields("alert acknowledged", id=fingerprint[:8], rule=rule_name, by=by))
        return (
            f"{by} acknowledged {fingerprint[:8]} (rule {rule_name}): "
            "no more reminders until it resolves."
        )

    def expire_silence(self, id_prefix: str, now: float) -> tuple[list[str], str]:
        with self.store.transaction() as tx:
            ids = tx.silences.expire(id_prefix, now)
            am_id = tx.silences.linked(ids[0]) if len(ids) == 1 else None
        self._silences_changed()
        if len(ids) != 1:
            return ids, ""
        log.info(fmt_fields("silence expired", id=ids[0]))
        api = self._config().alertmanager
        if api is None or am_id is None:
            return ids, ""
        try:
            alertmanager_api.expire_silence(self.session, api, am_id)
        except alertmanager_api.AlertmanagerError as exc:
            log.warning(fmt_fields("alertmanager expire failed", id=ids[0], error=exc))
            return ids, f" Still in Alertmanager ({am_id}): {exc}."
        return ids, f" Expired in Alertmanager too ({am_id})."
