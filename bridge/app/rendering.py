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
from bridge.config.model import ActionsConfig, Rule
from bridge.errors import StoreError
from bridge.locales import DEFAULT_LOCALE, Locale
from bridge.logs import fmt_fields
from bridge.model import Rendered
from bridge.pipeline.actionlinks import NO_LINKS, ActionLinks, LinkSettings, action_links
from bridge.pipeline.render import queued_message, queued_title
from bridge.store.records import Row

log = logging.getLogger("bridge")


class QueuedRenderer:
    def __init__(
        self,
        rules: Callable[[], Mapping[str, Rule]],
        locale: Callable[[], Locale] = lambda: DEFAULT_LOCALE,
        actions: Callable[[], ActionsConfig] = ActionsConfig,
        key: ActionKey | None = None,
    ) -> None:
        """`actions` and `key`: the one-tap links' settings and signing key (no key: no
        signed links)."""
        self.rules = rules
        self.locale = locale
        self.actions = actions
        self.key = key

    def message(self, row: Row, now: datetime) -> Rendered:
        rule = self.rules().get(row.rule)
        links = self._links(row, rule) if rule is not None else NO_LINKS
        return queued_message(rule, row.rule, row.message, row.event, now, links)

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
