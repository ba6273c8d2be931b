"""The sender's renderer: queued rows rendered at send time with the current config's rules.

Built by the composition root, so the sender (bridge/delivery) needs nothing of the pipeline: it
is handed this object (delivery.messages.Renderer). `rules()` is asked at every render, so a
reload's new rules and templates apply to messages still queued.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from bridge.config.model import Rule
from bridge.locales import DEFAULT_LOCALE, Locale
from bridge.model import Rendered
from bridge.pipeline.render import queued_message, queued_title
from bridge.store.records import Row


class QueuedRenderer:
    def __init__(
        self,
        rules: Callable[[], Mapping[str, Rule]],
        locale: Callable[[], Locale] = lambda: DEFAULT_LOCALE,
    ) -> None:
        self.rules = rules
        self.locale = locale

    def message(self, row: Row, now: datetime) -> Rendered:
        rule = self.rules().get(row.rule)
        return queued_message(rule, row.rule, row.message, row.event, now)

    def title(self, row: Row, now: datetime) -> str:
        return queued_title(self.rules().get(row.rule), row.message, row.event, now)

    def has_rule(self, name: str) -> bool:
        return name in self.rules()
