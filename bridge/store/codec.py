"""Events and messages to JSON and back, for the state store. Lossless for what we keep."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bridge import jsontext
from bridge.model import Alert, Button, Event, Link, Mention, Message


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    return {
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "starts_at": _time(alert.starts_at),
        "ends_at": _time(alert.ends_at),
        "generator_url": alert.generator_url,
        "fingerprint": alert.fingerprint,
        # Only when there are some: rows of alerts without them stay as they were.
        **({"extras": dict(alert.extras)} if alert.extras else {}),
    }


def alert_from_dict(data: dict[str, Any]) -> Alert:
    return Alert(
        status=data["status"],
        labels=data["labels"],
        annotations=data["annotations"],
        starts_at=_parse_time(data.get("starts_at")),
        ends_at=_parse_time(data.get("ends_at")),
        generator_url=data.get("generator_url", ""),
        fingerprint=data["fingerprint"],
        extras=data.get("extras") or {},
    )


def event_to_json(event: Event) -> str:
    return jsontext.dumps(
        {
            "input": event.input,
            "kind": event.kind,
            "status": event.status,
            "labels": dict(event.labels),
            "annotations": dict(event.annotations),
            "fingerprint": event.fingerprint,
            "received_at": _time(event.received_at),
            "alerts": [alert_to_dict(a) for a in event.alerts],
            "payload": event.payload,
        },
        default=str,
    )


def event_from_json(text: str) -> Event:
    data = jsontext.loads(text)
    received = _parse_time(data["received_at"])
    assert received is not None
    return Event(
        input=data["input"],
        kind=data["kind"],
        status=data["status"],
        labels=data["labels"],
        annotations=data["annotations"],
        fingerprint=data["fingerprint"],
        received_at=received,
        alerts=tuple(alert_from_dict(a) for a in data["alerts"]),
        payload=data["payload"],
    )


def message_to_json(message: Message) -> str:
    return jsontext.dumps(
        {
            "msgtype": message.msgtype,
            "title": message.title,
            "text": message.text,
            "mention": {
                "mobiles": list(message.mention.mobiles),
                "userids": list(message.mention.userids),
                "all": message.mention.all,
            },
            "url": message.url,
            "pic_url": message.pic_url,
            "buttons": [[b.title, b.url] for b in message.buttons],
            "btn_orientation": message.btn_orientation,
            "links": [[link.title, link.url, link.pic_url] for link in message.links],
            "fallback": message.fallback,
            **({"only_users": list(message.only_users)} if message.only_users else {}),
            **({"card": [list(pair) for pair in message.card]} if message.card else {}),
            **({"card_updates": list(message.card_updates)} if message.card_updates else {}),
        }
    )


def message_from_json(text: str) -> Message:
    data = jsontext.loads(text)
    mention = data["mention"]
    return Message(
        msgtype=data["msgtype"],
        title=data["title"],
        text=data["text"],
        mention=Mention(tuple(mention["mobiles"]), tuple(mention["userids"]), mention["all"]),
        url=data["url"],
        pic_url=data["pic_url"],
        buttons=tuple(Button(t, u) for t, u in data["buttons"]),
        btn_orientation=data["btn_orientation"],
        links=tuple(Link(t, u, p) for t, u, p in data["links"]),
        fallback=data["fallback"],
        only_users=tuple(data.get("only_users", ())),
        card=tuple((str(k), str(v)) for k, v in data.get("card", ())),
        card_updates=tuple(data.get("card_updates", ())),
    )


def like_containing(part: str) -> str:
    """A LIKE pattern (with ESCAPE '\\') matching text that contains `part` literally: people
    paste ids, and an id's `_` must not match any character."""
    return "%" + part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
