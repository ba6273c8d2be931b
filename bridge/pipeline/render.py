"""Rule + event -> Message, through the rule's sandboxed templates. Pure: `now` is passed in.

A template that fails at render time (a missing label, a bad filter argument) never loses the
alert: the message falls back to a plain body with the essentials and says so, and the caller logs
the template error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

import jinja2

from bridge.alerting.alertstate import KIND as PROMETHEUS_KIND
from bridge.alerting.grouping import ALL_LABELS, group_labels
from bridge.config.model import MentionRef, Rule
from bridge.config.template_bounds import DEFAULT_LIMITS, RenderLimits, render_budget
from bridge.durations import format_duration
from bridge.locales import DEFAULT_LOCALE, LOCALES, Locale, translate
from bridge.model import Alert, Button, Event, Link, Mention, Message, MsgType, Rendered
from bridge.pipeline.actionlinks import NO_LINKS, ActionLinks, with_actions
from bridge.pipeline.mentions import recipient_userids, rule_mention

MAX_TITLE_BYTES = 256  # DingTalk shows the title in the chat list and the notification


def _alert_view(alert: Alert, external_url: str) -> dict[str, Any]:
    ended = alert.ends_at if alert.ends_at and alert.ends_at.year > 1 else None
    lasted = (ended - alert.starts_at).total_seconds() if ended and alert.starts_at else None
    return {
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": alert.starts_at.isoformat() if alert.starts_at else "",
        "endsAt": ended.isoformat() if ended else "",
        "duration": format_duration(lasted) if lasted is not None else "",
        "generatorURL": alert.generator_url,
        "fingerprint": alert.fingerprint,
        "silenceURL": silence_url(external_url, alert.labels) if external_url else "",
        **alert.extras,  # what its source adds (Grafana: values, its own silenceURL, ...)
    }


def silence_url(external_url: str, labels: Mapping[str, str]) -> str:
    """Alertmanager's "new silence" page, pre-filled with the alert's labels."""
    matchers = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return (
        f"{external_url.rstrip('/')}/#/silences/new?filter={quote('{' + matchers + '}', safe='')}"
    )


def template_context(event: Event, rule: Rule, now: datetime) -> dict[str, Any]:
    """Everything a rule's templates can read: templating.COMMON_VARIABLES, plus
    ALERTMANAGER_VARIABLES for Alertmanager events and the alerts of prometheus inputs, and
    GRAFANA_VARIABLES for Grafana's."""
    payload = dict(event.payload)
    notification = event.kind in ("alertmanager", "grafana")  # Alertmanager's shape
    external = str(payload.get("externalURL", "")) if notification else ""
    # Alertmanager's alerts link to its silence page; Grafana's bring their own link.
    silence_base = external if event.kind == "alertmanager" else ""
    alerts = [_alert_view(a, silence_base) for a in event.alerts]
    context: dict[str, Any] = {
        "status": event.status,
        "labels": dict(event.labels),
        "annotations": dict(event.annotations),
        "fingerprint": event.fingerprint,
        "short_id": event.fingerprint[:8],  # what `ack <id>` in the chat takes
        "alerts": alerts,
        "firing": [a for a in alerts if a["status"] == "firing"],
        "resolved": [a for a in alerts if a["status"] == "resolved"],
        "payload": payload,
        "body": payload,
        "input": event.input,
        "kind": event.kind,
        "received_at": event.received_at,
        "now": now,
        "rule": rule.name,
        "actions": NO_LINKS.template_view(),  # the message's one-tap links, when sent (render)
    }
    if event.kind == PROMETHEUS_KIND:
        context.update(_as_notification(event, rule))
    elif notification:
        context.update(
            receiver=payload.get("receiver", ""),
            externalURL=external,
            groupLabels=payload.get("groupLabels") or {},
            commonLabels=payload.get("commonLabels") or {},
            commonAnnotations=payload.get("commonAnnotations") or {},
            groupKey=payload.get("groupKey", ""),
            truncatedAlerts=payload.get("truncatedAlerts", 0),
        )
    if event.kind == "grafana":  # (bridge/inputs/grafana.py checked their types)
        context.update(
            title=payload.get("title") or "",
            state=payload.get("state") or "",
            message=payload.get("message") or "",
            orgId=payload.get("orgId") or 0,
        )
    return context


def _as_notification(event: Event, rule: Rule) -> dict[str, Any]:
    """Alertmanager's notification variables for alerts a prometheus input keeps (Alertmanager's
    part is ours there): the receiver is the rule, the group labels those the rule groups by
    (each alert its own group without group_by, as Alertmanager's `group_by: ['...']`), the
    common labels and annotations those every alert of the message shares."""
    return {
        "receiver": rule.name,
        "externalURL": "",  # no Alertmanager to link to: alerts carry no silence URL
        "groupLabels": group_labels(rule.group_by or (ALL_LABELS,), event.labels),
        "commonLabels": dict(event.labels),
        "commonAnnotations": dict(event.annotations),
        "groupKey": event.fingerprint,
        "truncatedAlerts": 0,
    }


def _limits(rule: Rule) -> RenderLimits:
    limits = getattr(rule.body.environment, "limits", DEFAULT_LIMITS)
    return limits if isinstance(limits, RenderLimits) else DEFAULT_LIMITS


def locale_of(rule: Rule) -> Locale:
    """The language the rule's templates were compiled in (config/templating.py)."""
    locale = rule.title.environment.globals.get("locale")
    return next((known for known in LOCALES if known == locale), DEFAULT_LOCALE)


def render_title(rule: Rule, event: Event, now: datetime) -> str:
    """Just the title (a digest lists each merged alert by its title)."""
    if rule.title_is_default:
        fast = default_title(event, locale_of(rule))
        if fast is not None:
            return fast
    try:
        with render_budget(_limits(rule)):
            return _one_line(rule.title.render(template_context(event, rule, now)).strip())
    except Exception:  # the full render, if this alert is ever sent alone, reports the error
        return plain_title(event)


def default_title(event: Event, locale: Locale) -> str | None:
    """What config/rules.py's DEFAULT_TITLE renders to, without Jinja: a storm's digest
    renders a title for each alert it lists, and through the template (its context, the
    sandbox) that was the largest part of a sender's time (bench/README.md, issue 13).
    tests/test_render_title.py holds the two equal. None when a source's extras shadow an
    alert's status or labels in the template's view of it: render the template then."""
    if any("status" in a.extras or "labels" in a.extras for a in event.alerts):
        return None
    count = _firing_count(event)
    if "alertname" in event.labels:  # `is defined`: even when empty
        names = event.labels["alertname"]
    else:  # `map(attribute=...) | select | unique | join(', ')`: unique ignores case
        seen: dict[str, str] = {}
        for alert in event.alerts:
            name = alert.labels.get("alertname", "")
            if name:
                seen.setdefault(name.lower(), name)
        names = ", ".join(seen.values()) or event.input
    return _one_line(f"[{translate(locale, event.status.upper())}{count}] {names}".strip())


def plain_title(event: Event) -> str:
    """ "[FIRING ×3] DiskFull, HighCPU": the status, how many fire, and the alertname(s)."""
    return _one_line(
        f"[{event.status.upper()}{_firing_count(event)}] "
        f"{', '.join(alert_names(event)) or event.input}"
    )


def _firing_count(event: Event) -> str:
    """ " ×3" after a title's status when several of the event's alerts fire, else nothing."""
    firing = sum(1 for a in event.alerts if a.status == "firing")
    return f" ×{firing}" if firing > 1 else ""


def alert_names(event: Event) -> list[str]:
    """The alertnames of an event, each once, in order of appearance."""
    if event.labels.get("alertname"):
        return [event.labels["alertname"]]
    names = dict.fromkeys(a.labels.get("alertname", "") for a in event.alerts)
    return [n for n in names if n]


def identify(event: Event, locale: Locale = DEFAULT_LOCALE) -> str:
    """What tells this event's alerts apart, on one line: for one alert its labels (but the
    alertname, which titles carry); for a group, the count, then each alert by its alertname
    (when the group mixes several) and the labels it does not share with the others
    ("3 alerts: DiskFull instance=host-1; DiskFull instance=host-2; HighCPU instance=host-1")."""
    if len(event.alerts) <= 1:
        labels = event.alerts[0].labels if event.alerts else event.labels
        return _kv(labels, {"alertname"})
    common = set(event.labels)
    mixed = "alertname" not in common
    parts = []
    for alert in event.alerts:
        own = _kv(alert.labels, common | {"alertname"}) or f"#{alert.fingerprint[:8]}"
        name = alert.labels.get("alertname", "") if mixed else ""
        parts.append(f"{name} {own}" if name else own)
    listed = "; ".join(parts)
    return translate(locale, "%(count)d alerts: %(list)s", count=len(event.alerts), list=listed)


def _kv(labels: Mapping[str, str], skip: set[str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in skip)


def render(rule: Rule, event: Event, now: datetime, links: ActionLinks = NO_LINKS) -> Rendered:
    """The rule's message for `event`, or the plain fallback with the reason when a template
    fails or exceeds its bounds (templating.RenderLimits: the templates of one message share
    one budget of time, output and memory). `links`: its one-tap buttons (actionlinks.py),
    which the templates see as `actions` and the message carries either way."""
    context = template_context(event, rule, now)
    context["actions"] = links.template_view()
    mention = _mention(rule, event, context, now)
    try:
        with render_budget(_limits(rule)):
            return Rendered(with_actions(_render(rule, event, context, mention), links))
    except Exception as exc:  # a template may raise anything; the alert must still go out
        return Rendered(
            with_actions(fallback_message(rule.name, rule.msgtype, mention, event), links),
            error=f"{type(exc).__name__}: {exc}",
        )


def message_mention(rule: Rule, event: Event, now: datetime) -> Mention:
    """Who the rule's message for `event` pings (its refs for the event's status resolved
    through people); the template context is made only when a ref needs it."""
    if not rule.mention_refs.for_status(event.status):
        return rule.mention
    return _mention(rule, event, template_context(event, rule, now), now)


def with_recipients(
    message: Message,
    rule: Rule | None,
    event: Event | None,
    now: datetime,
    refs: tuple[MentionRef, ...],
) -> Message:
    """A work notice's message addressed to its target's `recipients:` resolved for this event
    (in only_users; the channel adds the target's fixed userids). A message made without an
    event (an escalation step) resolves the literal refs, `oncall:db` say, and no templates."""
    if not refs or rule is None:
        return message
    context = template_context(event, rule, now) if event is not None else {}
    try:
        with render_budget(_limits(rule)):
            users = recipient_userids(refs, rule, context, now.timestamp())
    except Exception:  # the budget ran out: the fixed recipients only
        users = ()
    return replace(message, only_users=users)


def _mention(rule: Rule, event: Event, context: dict[str, Any], now: datetime) -> Mention:
    # Under the render budget too: a mention template is an operator template like the body.
    # Who is on call is who is on call `now`: when the message is made, not when it was queued.
    try:
        with render_budget(_limits(rule)):
            return rule_mention(rule, event.status, context, now.timestamp())
    except Exception:  # the budget itself ran out: rule_mention logged what it could
        return rule.mention


def _render(rule: Rule, event: Event, context: dict[str, Any], mention: Mention) -> Message:
    def run(template: jinja2.Template | None) -> str:
        return template.render(context).strip() if template is not None else ""

    links: tuple[Link, ...] = ()
    if rule.msgtype == "feedCard":
        # One entry per alert (at most 10 fit well on a phone), linking to its source.
        links = tuple(
            Link(
                title=a["annotations"].get("summary") or a["labels"].get("alertname", event.input),
                url=a["generatorURL"] or run(rule.url),
                pic_url=run(rule.pic_url),
            )
            for a in context["alerts"][:10]
        ) or (Link(title=run(rule.title), url=run(rule.url), pic_url=run(rule.pic_url)),)
    buttons = tuple(Button(run(b.title), run(b.url)) for b in rule.buttons)
    return Message(
        msgtype=rule.msgtype,
        title=_one_line(run(rule.title)),
        text=run(rule.body),
        mention=mention,
        url=run(rule.url),
        pic_url=run(rule.pic_url),
        buttons=buttons,
        btn_orientation=rule.btn_orientation,
        links=links,
    )


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    raw = flat.encode()
    return (
        raw[:MAX_TITLE_BYTES].decode("utf-8", errors="ignore")
        if len(raw) > MAX_TITLE_BYTES
        else flat
    )


def fallback_message(
    rule: str, msgtype: str, mention: Mention, event: Event, why: str = "template failed"
) -> Message:
    """A plain-text message built without any operator template: status, labels, summaries."""
    lines = [
        plain_title(event),
        f"(rule {rule}: {why}, plain fallback)",
    ]
    if event.labels:
        lines.append(", ".join(f"{k}={v}" for k, v in sorted(event.labels.items())))
    # Every alert, one line each (a long fallback goes out in numbered parts like any message).
    common = set(event.labels) | {"alertname"}
    for alert in event.alerts:
        summary = alert.annotations.get("summary") or alert.annotations.get("description") or ""
        own = _kv(alert.labels, common)
        line = f"- {alert.status} {alert.labels.get('alertname', '')} {own}".rstrip()
        lines.append(f"{line} · {summary[:200]}" if summary else line)
    if not event.alerts and event.payload:
        lines.append(json.dumps(event.payload, ensure_ascii=False, default=str)[:2000])
    lines.append(f"received {event.received_at.isoformat(timespec='seconds')}")
    # A fallback keeps text and markdown (mentions still work); other types degrade to text.
    kind: MsgType = "markdown" if msgtype == "markdown" else "text"
    text = "\n\n".join(lines) if kind == "markdown" else "\n".join(lines)
    return Message(
        msgtype=kind,
        title=plain_title(event),
        text=text,
        mention=mention,
        fallback=True,
    )


def queued_title(rule: Rule | None, head: Message, event: Event | None, now: datetime) -> str:
    """A queued message (see model.Delivery) on one line, as a storm digest and `outbox list`
    show it: its title rendered from its event now, then what identifies its alerts (a title
    template need not: the default one names the alertname, not the instance)."""
    if event is None:
        return head.title
    title = render_title(rule, event, now) if rule else plain_title(event)
    locale = locale_of(rule) if rule else DEFAULT_LOCALE
    who = " ".join(identify(event, locale).split())  # one line, whatever the labels hold
    return f"{title} · {who}" if who else title


def queued_message(
    rule: Rule | None,
    rule_name: str,
    head: Message,
    event: Event | None,
    now: datetime,
    links: ActionLinks = NO_LINKS,
) -> Rendered:
    """The whole of a queued message, rendered from its event now. A rule removed by a reload
    since the alert was accepted still gets its alert sent, as a plain fallback."""
    if event is None:
        return Rendered(head)
    if rule is None:
        fallback = fallback_message(
            rule_name, head.msgtype, head.mention, event, why="rule removed since"
        )
        return Rendered(fallback, error="the rule was removed by a reload since")
    return render(rule, event, now, links)
