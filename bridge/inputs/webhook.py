"""A body POSTed by any program -> Events. The input's templates derive labels, status, identity
and time; the body is read as its `format` says, and fanned out by `items`.

The body itself is data: templates read it as `body`, nothing in it is ever compiled as a template.
One request becomes:

- `format: json` (the default): one event for a JSON object; with `items: <expression>` one
  event per element of the array the expression picks (`items: body` when the body is the
  array, as SkyWalking posts), each element's templates reading it as `item`;
- `format: form`: one event for an `application/x-www-form-urlencoded` body, its fields as
  `body.<field>` (bridge/inputs/bodyformats.py);
- `format: text`: one event per non-empty line, read as `line`.

What a rule's templates see as `body` is what the event is about: the JSON object, the element
(an element that is not an object as `{"item": value}`), the form's fields, or `{"line": ...}`.
An event is stored with that alone: an array of N elements fanned out is not stored N times.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
from jinja2.environment import TemplateExpression

from bridge.config.inputs.http_json import ITEM, LINE
from bridge.config.model import HttpInput
from bridge.config.template_bounds import DEFAULT_LIMITS, render_budget
from bridge.errors import InputError, bad_request
from bridge.inputs import jsonbody
from bridge.inputs.bodyformats import MAX_LINES, parse_form, text_lines
from bridge.inputs.bodytime import body_time
from bridge.inputs.kind import InputRuntime, json_events, json_post
from bridge.model import Alert, Event, Status, label_fingerprint

MAX_ITEMS = MAX_LINES  # events from one request, either way
_FORM_TYPE = "application/x-www-form-urlencoded"
_STATUS_WORDS: Mapping[str, Status] = {"firing": "firing", "resolved": "resolved"}


@dataclass(frozen=True)
class _Element:
    """What one event is made of: where it came from (for errors), what its templates read,
    and what rule templates will see as `body`."""

    where: str  # "" for a whole body, "items[3]: " or "line 3: "
    context: dict[str, Any]
    payload: Mapping[str, Any]


def _media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def decode_body(raw: bytes, spec: HttpInput, content_type: str = "") -> Any:
    """The body as the input's `format` reads it: a JSON value, a form's fields, or text.

    Content-Type decides nothing for JSON and text (curl -d labels JSON as a form, and many
    senders label nothing), but a form input refuses what is plainly JSON or multipart: read as
    a form it would become one field named after the whole body, and no alert."""
    media = _media_type(content_type)
    if spec.format == "text":
        return jsonbody.utf8_text(raw)
    if spec.format == "form":
        looks_json = raw.lstrip()[:1] in (b"{", b"[")
        if media == "application/json" or media.endswith("+json") or looks_json:
            said = f"the request is {media}" if media.endswith("json") else "the body is JSON"
            raise bad_request(
                f"this input reads form bodies (format: form), but {said}: send {_FORM_TYPE},"
                " or set format: json on the input"
            )
        if media == "multipart/form-data":
            raise bad_request(
                f"this input reads {_FORM_TYPE} bodies (format: form), not multipart/form-data"
            )
        return parse_form(raw)
    try:
        return jsonbody.loads(raw)
    except InputError as exc:
        if media != _FORM_TYPE or exc.status != 400:
            raise
        raise bad_request(
            f"{exc} (the request is {_FORM_TYPE}: to read form bodies, set format: form on the"
            " input)"
        ) from None


def _run(template: jinja2.Template, where: str, context: dict[str, Any]) -> str:
    try:
        return template.render(context).strip()
    except jinja2.UndefinedError as exc:
        raise bad_request(
            f"{where}: the body lacks a field the input needs ({exc.message})"
        ) from None
    except Exception as exc:  # a template over client data must not become a 500
        raise bad_request(
            f"{where}: cannot be computed from this body ({type(exc).__name__})"
        ) from None


def _picked(items: TemplateExpression, body: Any, now: datetime) -> list[Any]:
    """The elements `items` picks out of `body` (at most MAX_ITEMS)."""
    try:
        value = items(body=body, now=now)
        if isinstance(value, Mapping | str) or value is None:
            # (None: an absent field, as Jinja's expressions give it, or null)
            raise bad_request(
                f"items: must give an array, but gave {_json_type(value)}"
                " (is the field there? e.g. items: body.alerts)"
            )
        picked = list(itertools.islice(value, MAX_ITEMS + 1))
    except InputError:
        raise
    except Exception as exc:  # not iterable, or the expression failed on this body
        raise bad_request(
            f"items: cannot be computed from this body ({type(exc).__name__})"
        ) from None
    if len(picked) > MAX_ITEMS:
        raise bad_request(
            f"items: more than {MAX_ITEMS} elements; at most {MAX_ITEMS} are accepted per request"
        )
    return picked


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an object" if isinstance(value, Mapping) else "an array"


def _elements(body: Any, spec: HttpInput, now: datetime) -> Iterator[_Element]:
    if spec.format == "text":
        for number, line in enumerate(text_lines(body), 1):
            context = {"body": body, LINE: line, "now": now}
            yield _Element(f"line {number}: ", context, {LINE: line})
        return
    if spec.items is not None:
        for index, item in enumerate(_picked(spec.items, body, now)):
            payload = item if isinstance(item, dict) else {ITEM: item}
            yield _Element(f"items[{index}]: ", {"body": body, ITEM: item, "now": now}, payload)
        return
    if not isinstance(body, dict):
        hint = (
            ": to take one event per element, set items: body on the input"
            if isinstance(body, list)
            else ""
        )
        raise bad_request(f"the body must be a JSON object, not {_json_type(body)}{hint}")
    yield _Element("", {"body": body, "now": now}, body)


def _event(element: _Element, spec: HttpInput, now: datetime) -> Event:
    where, context = element.where, element.context

    def run(template: jinja2.Template, key: str) -> str:
        return _run(template, f"{where}{key}", context)

    def time(template: jinja2.Template | None, key: str) -> datetime | None:
        return body_time(run(template, key), f"{where}{key}") if template else None

    labels = {k: run(t, f"labels.{k}") for k, t in spec.labels.items()}
    annotations = {k: run(t, f"annotations.{k}") for k, t in spec.annotations.items()}
    status_text = run(spec.status, "status") if spec.status else "firing"
    status = _STATUS_WORDS.get(status_text.lower())
    if status is None:
        raise bad_request(
            f'{where}status must come out as "firing" or "resolved", got {status_text[:40]!r}'
        )
    if spec.fingerprint is not None:
        key = run(spec.fingerprint, "fingerprint")
        fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
    else:
        fingerprint = label_fingerprint(labels)
    alerts: tuple[Alert, ...] = ()
    if spec.starts_at is not None or spec.ends_at is not None:
        # The event's own time rides on its one alert, where templates (alerts[0].startsAt,
        # .duration), grouping and `render` already look for an alert's time.
        # Unknown (not configured, or rendered empty): when the post arrived, as for grouped
        # events without a time (bridge/alerting/grouping.py).
        starts, ends = time(spec.starts_at, "starts_at"), time(spec.ends_at, "ends_at")
        alerts = (
            Alert(
                status=status,
                labels=labels,
                annotations=annotations,
                starts_at=starts or now,
                ends_at=ends or (now if status == "resolved" else None),
                generator_url="",
                fingerprint=fingerprint,
            ),
        )
    return Event(
        input=spec.name,
        kind="webhook",
        status=status,
        labels=labels,
        annotations=annotations,
        fingerprint=fingerprint,
        received_at=now,
        alerts=alerts,
        payload=element.payload,
    )


def parse_webhook(body: Any, spec: HttpInput, now: datetime) -> list[Event]:
    """The events of one decoded body (see decode_body); InputError 400 naming what is wrong."""
    with render_budget(DEFAULT_LIMITS):  # the `items` expression's
        elements = list(_elements(body, spec, now))
    events = []
    for element in elements:
        with render_budget(DEFAULT_LIMITS):  # an element's templates share one, as a message's
            events.append(_event(element, spec, now))
    return events


def sample(spec: HttpInput, data: bytes, source: str, now: datetime) -> list[Event]:
    """`render --payload FILE`: the file as a request body of this input's format."""
    return parse_webhook(decode_body(data, spec), spec, now)


_PREPARE = json_events(parse_webhook, decode_body)
KIND = InputRuntime(
    type="webhook", serve=json_post(_PREPARE), prepare=_PREPARE, sample=sample, quick=True
)
