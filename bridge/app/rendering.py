"""The sender's renderer: queued rows rendered at send time with the current config's rules.

Built by the composition root, so the sender (bridge/delivery) needs nothing of the pipeline: it
is handed this object (delivery.messages.Renderer). `rules()` is asked at every render, so a
reload's new rules and templates apply to messages still queued.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from bridge.app.actionkey import ActionKey
from bridge.config.model import ActionsConfig, MentionRef, Rule
from bridge.errors import StoreError
from bridge.locales import DEFAULT_LOCALE, Locale
from bridge.logs import fmt_fields
from bridge.model import Rendered
from bridge.pipeline.actionlinks import NO_LINKS, ActionLinks, LinkSettings, action_links
from bridge.pipeline.cardmessage import as_card, localized, wants_card
from bridge.pipeline.render import queued_message, queued_title, with_recipients
from bridge.store.records import Row

log = logging.getLogger("bridge")


class QueuedRenderer:
    def __init__(
        self,
        rules: Callable[[], Mapping[str, Rule]],
        locale: Callable[[], Locale] = lambda: DEFAULT_LOCALE,
        actions: Callable[[], ActionsConfig] = ActionsConfig,
        key: ActionKey | None = None,
        sends_cards: Callable[[str], bool] = lambda target: False,
        recipients: Callable[[str], tuple[MentionRef, ...]] = lambda target: (),
    ) -> None:
        """`actions` and `key`: the one-tap links' settings and signing key (no key: no
        signed links). `sends_cards`: does the target of that name send interactive cards
        (an app_robot with a card_template_id, pipeline/cardmessage.py)?"""
        self.rules = rules
        self.locale = locale
        self.actions = actions
        self.key = key
        self.sends_cards = sends_cards
        self.recipients = recipients  # a work-notice target's `recipients:` by name

    def message(self, row: Row, now: datetime) -> Rendered:
        if row.message.card_updates:  # a card's change: its words are set, only translated
            return Rendered(localized(row.message, self.locale()))
        rule = self.rules().get(row.rule)
        card = rule is not None and wants_card(rule, row.event) and self.sends_cards(row.target)
        # On a card the buttons are the template's: the text carries no signed links.
        links = self._links(row, rule) if rule is not None and not card else NO_LINKS
        rendered = queued_message(rule, row.rule, row.message, row.event, now, links)
        refs = self.recipients(row.target)
        if refs:
            addressed = with_recipients(rendered.message, rule, row.event, now, refs)
            rendered = Rendered(addressed, rendered.error)
        if card and row.event is not None:
            return Rendered(as_card(rendered.message, row.event, self.locale()), rendered.error)
        return rendered

    def _links(self, row: Row, rule: Rule) -> ActionLinks:
        if not rule.actions or row.event is None:
            return NO_LINKS
        actions = self.actions()
        key = None
        if actions.base_url is not None and self.key is not None:
            try:
                key = self.key.get(actions)
            except StoreError as exc:  # the message still goes, without the signed links
                log.warning(fmt_fields("action key not available", id=row.id, error=str(exc)))
        settings = LinkSettings(actions, key, row.target, row.id, row.created_at, self.locale())
        return action_links(rule, row.event, settings)

    def title(self, row: Row, now: datetime) -> str:
        return queued_title(self.rules().get(row.rule), row.message, row.event, now)

    def has_rule(self, name: str) -> bool:
        return name in self.rules()
