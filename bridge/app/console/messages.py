"""The Messages page: what waits in the outbox (pending, sent work notices awaiting their
results, dead letters) and what was sent lately (the store's history: every attempt with
DingTalk's errcode and errmsg), searchable; a message's own page with the exact bodies sent,
as DingTalk shows them, and this process's log lines of its id; retry and purge.

Retry and purge do what `dingtalk-bridge outbox retry|purge` do, in one transaction, and wake
the target's sender at once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from bridge.app.console.bodies import BodyView, message_views, stored_views
from bridge.app.console.web import Answer, Refused, Request, redirect
from bridge.errors import DeliveryError
from bridge.logs import fmt_fields
from bridge.pipeline.render import queued_message, queued_title
from bridge.store import records

if TYPE_CHECKING:
    from bridge.app.console.app import Console

log = logging.getLogger("bridge.console")

PAGE = 50  # rows of each list per page
QUEUED_OUTCOMES = (records.PENDING, records.SENT, records.DEAD)  # in the outbox now
SENT_OUTCOMES = records.OUTCOMES  # in the history
MAX_QUERY = 200
# What a status or an outcome is called on the page (the words catalog translates these).
LABELS = {
    records.PENDING: "waiting",
    records.SENT: "awaiting results",
    records.DEAD: "dead letter",  # records.DEAD_LETTER too: the same word in both tables
    records.DELIVERED: "delivered",
    records.ACCEPTED: "accepted by DingTalk",
    records.RETRYING: "retrying",
}
DONE = ("retried", "purged")  # what a redirect after an action may say was done


def listing(console: Console, req: Request) -> Answer:
    bridge = console.bridge
    config = bridge.config
    text = req.query("q")[:MAX_QUERY].strip()
    target = req.query("target") or None
    outcome = req.query("outcome") or None
    before = _number(req.query("before"))
    now = datetime.now(UTC)
    with bridge.store.reading() as tx:
        queued = (
            tx.outbox.listing(outcome if outcome in QUEUED_OUTCOMES else None, target, PAGE * 4)
            if outcome is None or outcome in QUEUED_OUTCOMES
            else []
        )
        sent = (
            tx.history.recent(
                text=text,
                target=target,
                outcome=outcome if outcome in SENT_OUTCOMES else None,
                limit=PAGE,
                before=before,
            )
            if outcome is None or outcome in SENT_OUTCOMES
            else []
        )
    rows = []
    for row in queued:
        title = queued_title(config.rules_by_name.get(row.rule), row.message, row.event, now)
        shown = {
            "id": row.id,
            "status": row.status,
            "target": row.target,
            "rule": row.rule,
            "created_at": row.created_at,
            "not_before": row.not_before,
            "attempts": row.attempts,
            "reason": row.reason or "",
            "errcode": row.errcode,
            "errmsg": row.errmsg or "",
            "title": title,
        }
        if not text or _contains(shown, text):
            rows.append(shown)
    more = {"q": text, "target": target or "", "outcome": outcome or ""}
    older = (
        f"{req.base}/messages?{urlencode({**more, 'before': repr(sent[-1].at)})}"
        if len(sent) == PAGE
        else ""
    )
    return console.views.page(
        req,
        "messages.html",
        nav="messages",
        queued=rows[:PAGE],
        sent=sent,
        text=text,
        target=target or "",
        outcome=outcome or "",
        targets=sorted(config.targets),
        outcomes=(*QUEUED_OUTCOMES, *[o for o in SENT_OUTCOMES if o != "dead"]),
        older=older,
        done=_done(req),
        labels=LABELS,
    )


def one(console: Console, req: Request) -> Answer:
    bridge = console.bridge
    config = bridge.config
    id_ = req.params["id"]
    with bridge.store.reading() as tx:
        found = [r for r in tx.outbox.find(id_) if r.id == id_]
        attempts = tx.history.attempts(id_)
        results = tx.notices.results(id_)
    if not found and not attempts and not results:
        raise Refused(404, "Not found")
    row = found[0] if found else None
    target_name = row.target if row else attempts[-1].target if attempts else results[-1].target
    target = config.targets.get(target_name)
    kind = target.type if target is not None else ""
    tried = [{"attempt": a, "views": stored_views(kind, a.bodies)} for a in attempts]
    upcoming: list[BodyView] = []
    if row is not None and row.status != records.SENT and target is not None:
        now = datetime.now(UTC)
        rule = config.rules_by_name.get(row.rule)
        message = queued_message(rule, row.rule, row.message, row.event, now).message
        try:
            upcoming = message_views(target, message, row.id, row.created_at, config.timezone)
        except DeliveryError:  # nothing it could be sent in (recipients resolve to nobody)
            upcoming = []
    return console.views.page(
        req,
        "message.html",
        nav="messages",
        id=id_,
        row=row,
        target=target_name,
        tried=tried,
        upcoming=upcoming,
        results=results,
        log_lines=console.bridge.log_lines(id_, limit=200),
        done=_done(req),
        labels=LABELS,
    )


def retry(console: Console, req: Request) -> Answer:
    id_ = req.params["id"]
    row = _queued(console, id_)
    now = console.clock.time()
    with console.bridge.store.transaction() as tx:
        revived = tx.outbox.revive([id_], now)
        tx.outbox.due_now([id_], now)  # a pending one skips its backoff
    console.bridge.wake_senders([row.target])
    log.info(fmt_fields("console retry", id=id_, target=row.target, dead=revived, by=req.who))
    return redirect(f"{req.base}/messages/{id_}?done=retried")


def purge(console: Console, req: Request) -> Answer:
    id_ = req.params["id"]
    row = _queued(console, id_)
    with console.bridge.store.transaction() as tx:
        tx.outbox.purge([id_])
    log.info(fmt_fields("console purge", id=id_, target=row.target, by=req.who))
    return redirect(f"{req.base}/messages?done=purged")


def retry_dead(console: Console, req: Request) -> Answer:
    """Every dead letter (of one target, when the form names it) back in the queue."""
    target = req.field("target") or None
    now = console.clock.time()
    with console.bridge.store.transaction() as tx:
        ids = [r.id for r in tx.outbox.listing(records.DEAD, target, limit=100_000)]
        revived = tx.outbox.revive(ids, now)
    for name in {t for t in [target] if t} or set(console.bridge.config.targets):
        console.bridge.wake_senders([name])
    log.info(fmt_fields("console retry dead letters", target=target or "*", count=revived))
    return redirect(f"{req.base}/messages?done=retried")


def _queued(console: Console, id_: str) -> records.Row:
    with console.bridge.store.reading() as tx:
        found = [r for r in tx.outbox.find(id_) if r.id == id_]
    if not found:
        raise Refused(409, "This message is no longer in the outbox.")
    return found[0]


def _done(req: Request) -> str:
    return done if (done := req.query("done")) in DONE else ""


def _contains(shown: dict[str, Any], text: str) -> bool:
    wanted = text.casefold()
    return any(wanted in str(v).casefold() for v in shown.values() if v is not None)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) < 1e12 else None  # not NaN, not absurd
