"""Values the contract tests store: events, deliveries, one fixed time."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge.model import Delivery, Event, Message
from bridge.store.api import Store

NOW = 1_700_000_000.0


def event(fingerprint: str, status: str = "firing", **labels: str) -> Event:
    return Event(
        input="am",
        kind="alertmanager",
        status="resolved" if status == "resolved" else "firing",
        labels={"alertname": fingerprint, **labels},
        annotations={"summary": f"about {fingerprint}"},
        fingerprint=fingerprint,
        received_at=datetime.fromtimestamp(NOW, UTC),
    )


def delivery(id_: str, target: str = "ops", rule: str = "r", with_event: bool = False) -> Delivery:
    return Delivery(
        id=id_,
        rule=rule,
        target=target,
        message=Message("markdown", f"title {id_}", f"text {id_}"),
        fingerprint=f"fp-{id_}",
        created_at=datetime.fromtimestamp(NOW, UTC),
        event=event(f"fp-{id_}") if with_event else None,
    )


def enqueue(store: Store, *ids: str, at: float = NOW, target: str = "ops") -> None:
    with store.transaction() as tx:
        tx.outbox.enqueue([delivery(i, target) for i in ids], at)
