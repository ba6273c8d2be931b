"""The one-tap buttons of one message (a rule's `actions`): the signed Ack and Silence links and
the Runbook link, made when the message is sent, and put on the message. Pure: the key, the
message's id and when it was accepted are passed in.

Where they go, per message kind (why: reference/dingtalk.md §1.4-§1.5):
- markdown (the default kind): a line of links under the text. An actionCard would show real
  buttons, but DingTalk honours @-mentions only in text and markdown messages, and an alert
  that pages someone must keep paging them;
- actionCard: buttons after the rule's own `buttons` (robot `btns`, work notice
  `btn_json_list`);
- text: one "Ack: <url>" line each (DingTalk's clients make URLs in text tappable).
A template that writes a link itself (`{{ actions.ack }}`) keeps its place: only links the text
does not already hold are added.

Each link is the same for every try of a message (its nonce is the message's outbox id, its
expiry the acceptance time plus `ttl`): a retried work notice must be the same content, or
DingTalk's own dedup of a retry that did arrive cannot absorb it (dingtalk/worknotice.py).
Resolved alerts get no buttons; digests neither (one Ack per merged alert would drown the list;
a digest's alerts keep their ids for `ack <id>` in the chat).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from bridge.alerting.actions import RUNBOOK, SILENCE, Grant, sign
from bridge.alerting.actionwords import button, length_word
from bridge.config.model import ActionsConfig, Rule
from bridge.locales import DEFAULT_LOCALE, Locale, translate
from bridge.model import Button, Event, Message

ACT_PATH = "/-/act/"
DETAILS = "查看详情"  # the words of a single-button card's button (dingtalk/robot.py)


@dataclass(frozen=True)
class LinkSettings:
    """What making the links of one message needs beside its rule and event."""

    actions: ActionsConfig
    key: bytes | None  # None: no signed links (the key could not be had)
    target: str
    message_id: str
    accepted_at: float  # Unix seconds
    locale: Locale = DEFAULT_LOCALE


@dataclass(frozen=True)
class ActionLinks:
    buttons: tuple[Button, ...] = ()
    ack: str = ""
    silence: tuple[tuple[str, str], ...] = ()  # ("1h", url), by the length as configs write it
    runbook: str = ""

    def template_view(self) -> dict[str, Any]:
        """What templates read as `actions`: every key always there ("" / {} when not
        offered), so `{% if actions.ack %}` works under the templates' StrictUndefined. A fresh
        dict each time: a template cannot change what another message sees."""
        return {"ack": self.ack, "silence": dict(self.silence), "runbook": self.runbook}


NO_LINKS = ActionLinks()


def action_links(rule: Rule, event: Event, settings: LinkSettings) -> ActionLinks:
    if not rule.actions or event.status != "firing":
        return NO_LINKS
    locale = settings.locale
    buttons: list[Button] = []
    ack, runbook, silence = "", "", []
    for name in rule.actions:
        if name == RUNBOOK:
            url = runbook_url(event)
            if url:
                buttons.append(Button(translate(locale, "Runbook"), url))
                runbook = url
            continue
        lengths = settings.actions.silence if name == SILENCE else (0.0,)
        for seconds in lengths:
            url = _signed_url(rule, event, settings, name, seconds)
            if not url:
                continue
            buttons.append(Button(button(locale, name, seconds), url))
            if name == SILENCE:  # by its length as the config writes it: "1h", "30m", "1d"
                silence.append((length_word(seconds), url))
            else:
                ack = url
    return ActionLinks(tuple(buttons), ack, tuple(silence), runbook)


def _signed_url(
    rule: Rule, event: Event, settings: LinkSettings, action: str, seconds: float
) -> str:
    base = settings.actions.base_url
    if base is None or settings.key is None:
        return ""
    grant = Grant(
        action=action,
        fingerprint=event.fingerprint,
        rule=rule.name,
        target=settings.target,
        labels=dict(event.labels),
        duration=seconds,
        expires=settings.accepted_at + settings.actions.ttl,
        nonce=settings.message_id,
    )
    try:
        token = sign(grant, settings.key)
    except ValueError:  # labels too long for a link: that button is left out
        return ""
    return f"{base}{ACT_PATH}{token}"


def runbook_url(event: Event) -> str:
    """The alert's `runbook_url` annotation (a group's: the first of its alerts that has one),
    when it is an http(s) URL."""
    candidates = [event.annotations.get("runbook_url", "")]
    candidates += [a.annotations.get("runbook_url", "") for a in event.alerts]
    return next((u for u in candidates if u.startswith(("https://", "http://"))), "")


def with_actions(message: Message, links: ActionLinks) -> Message:
    """`message` carrying `links` in the way its kind shows them best (see the module's doc)."""
    missing = [b for b in links.buttons if b.url not in message.text]
    if not missing:
        return message
    if message.msgtype == "actionCard":
        # A card of one button (its `url`) becomes a card of several: that one first.
        own = message.buttons or ((Button(DETAILS, message.url),) if message.url else ())
        return replace(message, buttons=(*own, *missing))
    if message.msgtype == "markdown":
        line = " · ".join(f"[{b.title}]({_markdown_url(b.url)})" for b in missing)
        return replace(message, text=f"{message.text}\n\n{line}")
    if message.msgtype == "text":
        lines = "\n".join(f"{b.title}: {b.url}" for b in missing)
        return replace(message, text=f"{message.text}\n{lines}")
    return message  # link and feedCard cannot carry them (the config check says so)


def _markdown_url(url: str) -> str:
    """A URL safe inside markdown's (...): a space or parenthesis would end it early."""
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
