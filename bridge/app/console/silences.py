"""The Silences and acks page: the silences in force (the config's, which only the config ends,
and those added at runtime from the chat, the CLI or here), the recently ended ones, the
acknowledged alerts; with the operator's token, a form to add a silence with a preview of the
firing alerts it would silence, an expire button per runtime silence, and an ack form.

Everything that changes goes through the desk (app/desk.py), as the chat's and the CLI's
commands do: a silence is kept in the store, mirrored to Alertmanager when its API is
configured, and the intake's silence cache forgets the old set at once. The matchers are read
by the CLI's parser (alerting/matchers.parse_typed), and who acted is the name given at sign-in.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import TYPE_CHECKING, Any

from bridge.alerting.matchers import Matcher, parse_all_typed
from bridge.alerting.silences import Silence, silence_end
from bridge.app.console.web import Answer, Refused, Request, json_answer
from bridge.app.console.words import word
from bridge.app.firing import SeenAlert, latest_of, matching
from bridge.errors import StoreError

if TYPE_CHECKING:
    from bridge.app.console.app import Console

log = logging.getLogger("bridge.console")

RECENTLY_ENDED = 86_400.0  # seconds: ended silences stay listed this long
MAX_COMMENT_CHARS = 1_000
MAX_MATCHER_CHARS = 8_000
PREVIEW_SHOWN = 50  # alerts listed by the preview (the count says how many match)
ACKS_SHOWN = 100
FOREVER = 1e15  # a config silence without ends_at ends never (inf): no date to show


@dataclass(frozen=True)
class SilenceAsked:
    """A valid add form: what the desk is given, and the notes on how matchers were read."""

    matchers: tuple[Matcher, ...]
    ends: float
    comment: str
    notes: tuple[str, ...]


def read_form(
    matchers_text: str, duration: str, until: str, comment: str, tz: tzinfo, now: float
) -> tuple[SilenceAsked | None, list[str]]:
    """The add form's fields read, or None and every problem found (each names its field)."""
    problems: list[str] = []
    parsed: tuple[Matcher, ...] = ()
    notes: list[str] = []
    if len(matchers_text) > MAX_MATCHER_CHARS:
        problems.append(f"matchers: at most {MAX_MATCHER_CHARS} characters")
    else:
        parsed, notes, wrong = parse_all_typed(matchers_text)
        problems += [f"matchers: {p}" for p in wrong]
    ends = 0.0
    try:
        ends = silence_end(duration.strip() or "1h", until.strip(), tz, now)
    except ValueError as exc:
        problems.append(f"{'ends' if until.strip() else 'duration'}: {exc}")
    comment = comment.strip()
    if not comment:
        problems.append("comment: say why (Alertmanager asks for one too)")
    elif len(comment) > MAX_COMMENT_CHARS:
        problems.append(f"comment: at most {MAX_COMMENT_CHARS} characters")
    if problems:
        return None, problems
    return SilenceAsked(parsed, ends, comment, tuple(notes)), []


def preview(matchers_text: str, firing: list[SeenAlert], known: int) -> tuple[int, dict[str, Any]]:
    """The preview's answer: which of the `firing` alerts the typed matchers would silence
    (422 with the problems when they cannot be read)."""
    if len(matchers_text) > MAX_MATCHER_CHARS:
        problems = [f"at most {MAX_MATCHER_CHARS} characters"]
        return 422, {"error": problems[0], "problems": problems, "alerts": []}
    parsed, notes, problems = parse_all_typed(matchers_text)
    if problems:
        return 422, {"error": "; ".join(problems), "problems": problems, "alerts": []}
    hits = matching(firing, parsed)
    return 200, {
        "matchers": [str(m) for m in parsed],
        "notes": notes,
        "problems": [],
        "count": len(hits),
        "firing": len(firing),
        "known": known,
        "alerts": [_alert_json(a) for a in hits[:PREVIEW_SHOWN]],
    }


def _alert_json(alert: SeenAlert) -> dict[str, Any]:
    return {
        "id": alert.fingerprint[:8],
        "labels": dict(sorted(alert.labels.items())),
        "rules": list(alert.rules),
        "input": alert.input,
        "seen_at": alert.seen_at,
    }


def _firing(console: Console) -> tuple[list[SeenAlert], int]:
    """The alerts the notification log says fire, as every worker last saw them, latest first;
    and how many alerts the workers know in all (what the preview could match at most)."""
    with console.bridge.store.reading() as tx:
        in_log = tx.alertlog.firing_alerts()
    seen = console.bridge.seen_alerts()  # each sibling's file read and parsed once
    known = len({alert.fingerprint for alerts in seen for alert in alerts})
    return latest_of(seen, in_log), known


def _state(silence: Silence, now: float) -> str:
    if silence.ends_at <= now:
        return "expired"
    return "active" if silence.active(now) else "pending"


def page_data(console: Console, now: float) -> dict[str, Any]:
    bridge = console.bridge
    with bridge.store.reading() as tx:
        runtime = tx.silences.load(ended_after=now - RECENTLY_ENDED)
        acks = tx.acks.listing(ACKS_SHOWN)
    current = [
        {"silence": s, "state": _state(s, now), "expirable": s.source != "config"}
        for s in [*bridge.config.silences, *runtime]
        if s.ends_at > now
    ]
    ended = sorted((s for s in runtime if s.ends_at <= now), key=lambda s: -s.ends_at)
    return {
        "current": current,
        "ended": ended,
        "acks": acks,
        "at": now,
    }


def _page(
    console: Console,
    req: Request,
    status: int = 200,
    form: Mapping[str, str] | None = None,
    problems: list[str] | None = None,
    done: str = "",
) -> Answer:
    now = console.clock.time()
    try:
        data = page_data(console, now)
    except StoreError as exc:
        raise Refused(503, "The state store cannot be read now.") from exc
    return console.views.page(
        req,
        "silences.html",
        status,
        nav="silences",
        data=data,
        form=form or {"matchers": req.query("matchers"), "duration": "1h"},
        problems=problems or [],
        done=done,
        forever=FOREVER,
    )


def page(console: Console, req: Request) -> Answer:
    return _page(console, req)


def add(console: Console, req: Request) -> Answer:
    form = {n: req.field(n) for n in ("matchers", "duration", "until", "comment")}
    now = console.clock.time()
    asked, problems = read_form(
        form["matchers"],
        form["duration"],
        form["until"],
        form["comment"],
        console.bridge.config.timezone,
        now,
    )
    if asked is None:
        return _page(console, req, 422, form, problems)
    silence, note = console.bridge.desk.add_silence(
        asked.matchers, now, asked.ends, asked.comment, req.who
    )
    done = word(
        req.locale,
        "Silence %(id)s added: %(matchers)s.",
        id=silence.id,
        matchers=silence.describe(),
    )
    notes = "".join(f" {n}." for n in asked.notes)
    return _page(console, req, done=f"{done}{notes}{note}")


def expire(console: Console, req: Request) -> Answer:
    ids, note = console.bridge.desk.expire_silence(req.params["id"], console.clock.time(), req.who)
    if len(ids) != 1:
        text = word(req.locale, "No single active silence with id %(id)s.", id=req.params["id"])
        return _page(console, req, 404, problems=[text])
    return _page(console, req, done=word(req.locale, "Silence %(id)s expired.", id=ids[0]) + note)


def ack(console: Console, req: Request) -> Answer:
    short_id = req.field("alert").strip()[:64]
    if not short_id:
        return _page(console, req, 422, problems=[word(req.locale, "Give the alert's id.")])
    done, text = console.bridge.desk.acknowledged(short_id, req.who, console.clock.time())
    if not done:
        return _page(console, req, 409, problems=[text])
    return _page(console, req, done=text)


def preview_api(console: Console, req: Request) -> Answer:
    text = req.json().get("matchers", "")
    if not isinstance(text, str):
        raise Refused(400, "matchers must be a string")
    try:
        firing, known = _firing(console)
    except StoreError as exc:
        raise Refused(503, "The state store cannot be read now.") from exc
    status, answer = preview(text, firing, known)
    return json_answer(status, answer)
