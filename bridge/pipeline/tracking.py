"""The events a `prometheus` input's alert state gives the pipeline, read and written in the
intake's transaction (Intake.accept_from): a post's, and an expiry sweep's.

bridge/alerting/alertstate.py decides what a post or the passing of time does to one alert; here
that decision meets the store: the state is read locked, the new state written, and the events
returned to be decided and committed in the same transaction, so a crash or a refused commit
(503) leaves the state as it was and Prometheus's next post, or the next sweep, does it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bridge.alerting.alertstate import PostedAlert, event_of, received
from bridge.config.model import PrometheusInput
from bridge.model import Event, label_fingerprint
from bridge.store.api import Tx

SWEEP_BATCH = 500  # expired alerts resolved per transaction


def posted_events(
    tx: Tx, spec: PrometheusInput, alerts: Sequence[PostedAlert], now: datetime
) -> list[Event]:
    """Keep each posted alert's new state; the events of those that fire or just resolved, in
    the order posted. The alerts are locked in the order of their fingerprints, so two posts
    of the same alerts in another order cannot each wait for the other (a deadlock)."""
    stamp = now.timestamp()
    # (fingerprint, index): the index is unique, so the alerts themselves are never compared.
    keyed = sorted((label_fingerprint(a.labels), index, a) for index, a in enumerate(alerts))
    caused: list[tuple[int, Event]] = []
    for fingerprint, index, posted in keyed:
        kept = tx.alertstate.get_for_update(spec.name, fingerprint)
        state, status = received(spec.name, posted, kept, stamp, spec.resolve_timeout)
        tx.alertstate.put(state)
        if status is not None:
            caused.append((index, event_of(state, status, now)))
    return [event for _, event in sorted(caused, key=lambda item: item[0])]


def expired_events(tx: Tx, spec: PrometheusInput, now: datetime) -> list[Event]:
    """Claim (as resolved) up to SWEEP_BATCH alerts of the input whose endsAt has passed
    without a fresh post; their resolved events."""
    claimed = tx.alertstate.claim_expired(spec.name, now.timestamp(), SWEEP_BATCH)
    return [event_of(alert, "resolved", now) for alert in claimed]
