"""The words of the one-tap actions, in the config's locale: the buttons ("Silence 1h"), the
confirmation page's question ("Silence DiskFull on db-1 for 1h?") and what was done ("silenced
for 1h by 张三"), which the page and the follow-up message in the chat both say. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.alerting.actions import SILENCE, Grant
from bridge.locales import Locale, duration, translate


def describe(locale: Locale, labels: Mapping[str, str]) -> str:
    """An alert as a person names it: "DiskFull on db-1" (its alertname and instance), else
    its alertname and other labels, else its labels ("" when it has none)."""
    name = labels.get("alertname", "")
    where = labels.get("instance", "")
    if name and where:
        return translate(locale, "%(alert)s on %(instance)s", alert=name, instance=where)
    rest = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
    return " ".join(part for part in (name, rest) if part)


def length_word(seconds: float) -> str:
    """A silence's length as configs write it ("1h", "30m", "1d"): the key of a template's
    `actions.silence` and of a card's `silence_<length>` button."""
    return duration("en", seconds).replace(" ", "")


def button(locale: Locale, action: str, seconds: float = 0.0) -> str:
    """A button's words: "Ack", "Silence 1h" (确认, 静默 1 小时)."""
    if action == SILENCE:
        return translate(locale, "Silence %(duration)s", duration=duration(locale, seconds))
    return translate(locale, "Ack")


def question(locale: Locale, grant: Grant) -> str:
    """What the confirmation page asks before acting."""
    what = describe(locale, grant.labels) or grant.fingerprint[:8]
    if grant.action == SILENCE:
        shown = duration(locale, grant.duration)
        return translate(locale, "Silence %(alert)s for %(duration)s?", alert=what, duration=shown)
    return translate(
        locale, "Acknowledge %(alert)s (no more reminders until it resolves)?", alert=what
    )


def done(locale: Locale, grant: Grant, who: str) -> str:
    """What was done, for the follow-up message and the page after it."""
    if grant.action == SILENCE:
        shown = duration(locale, grant.duration)
        text = translate(locale, "silenced for %(duration)s by %(who)s", duration=shown, who=who)
    else:
        text = translate(
            locale, "acknowledged by %(who)s: no more reminders until it resolves", who=who
        )
    what = describe(locale, grant.labels) or grant.fingerprint[:8]
    return translate(locale, "%(alert)s: %(done)s", alert=what, done=text)


def card_status(locale: Locale, action: str, who: str, seconds: float = 0.0) -> str:
    """An interactive card's status line once `who` took `action` ("已确认，操作人 张三"):
    shorter than `done`, since the card shows the alert above it."""
    if action == SILENCE:
        shown = duration(locale, seconds)
        return translate(locale, "silenced for %(duration)s by %(who)s", duration=shown, who=who)
    return translate(locale, "acknowledged by %(who)s", who=who)
