"""Alerts posted to a `prometheus` input, kept as Alertmanager keeps them: pure functions.

Prometheus posts each active alert again and again (every `--rules.alert.resend-delay`), with
an `endsAt` a few evaluation intervals ahead; a resolved alert comes with an `endsAt` in the
past. Alertmanager keeps one state per alert (its label fingerprint): the latest post, merged
with the one before when their activity ranges overlap, and an alert whose `endsAt` passes
without a fresh post is resolved. The bridge plays Alertmanager's part, so this module says
what one post, or the passing of time, does to one alert's state, and what the pipeline is told:

- a firing post (new, refreshed, or firing again after it resolved) is a firing event: the
  pipeline's notification log, grouping and `repeat_interval` decide what is sent, as for every
  other input (Prometheus does not decide repeats: Alertmanager does, and here that is us);
- a resolved post of an alert kept as firing (or not kept at all) is a resolved event; of an
  alert already resolved, nothing (Prometheus repeats resolved alerts for 15 minutes);
- a firing alert whose `endsAt` has passed is resolved by the sweep (pipeline/expiry.py).

The state table itself is bridge/store/alertstate.py; the transaction that reads, merges, writes
and decides is pipeline/tracking.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from bridge.model import Alert, Event, Status, label_fingerprint

KIND = "prometheus"  # the events' kind (the input type)


@dataclass(frozen=True)
class PostedAlert:
    """One alert of a POST /api/v2/alerts body, checked (bridge/inputs/prometheus.py).
    Times are seconds since the epoch; None where the body left them out."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: float | None
    ends_at: float | None
    generator_url: str


@dataclass(frozen=True)
class TrackedAlert:
    """One alert as kept: a row of the state table, keyed by (input, fingerprint)."""

    input: str
    fingerprint: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: float
    ends_at: float
    generator_url: str
    resolved: bool  # told as resolved (posted so, or expired): a later resolved post is no news
    timeout: bool  # ends_at is ours (`resolve_timeout`): the post gave none
    updated_at: float


def received(
    input_name: str,
    posted: PostedAlert,
    kept: TrackedAlert | None,
    now: float,
    resolve_timeout: float,
) -> tuple[TrackedAlert, Status | None]:
    """The state after `posted` arrives at `now` (`kept`: the state before, if any), and the
    status of the event it causes (None: nothing changed that anyone was not told)."""
    starts_at = posted.starts_at if posted.starts_at is not None else now
    timeout = posted.ends_at is None
    ends_at = now + resolve_timeout if posted.ends_at is None else posted.ends_at
    new = TrackedAlert(
        input=input_name,
        fingerprint=label_fingerprint(posted.labels),
        labels=posted.labels,
        annotations=posted.annotations,
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url=posted.generator_url,
        resolved=ends_at <= now,
        timeout=timeout,
        updated_at=now,
    )
    if kept is not None and _overlap(kept, new):
        new = _merge(kept, new, now)
    if not new.resolved:
        return new, "firing"
    if kept is not None and kept.resolved:
        return new, None  # a resolved alert re-sent: told already
    return new, "resolved"


def _overlap(kept: TrackedAlert, new: TrackedAlert) -> bool:
    """Alertmanager merges a post into the alert it holds when their activity ranges overlap
    (provider/mem: the new end or the new start falls inside the old range)."""
    return kept.starts_at < new.ends_at < kept.ends_at or (
        kept.starts_at < new.starts_at < kept.ends_at
    )


def _merge(kept: TrackedAlert, new: TrackedAlert, now: float) -> TrackedAlert:
    """Alertmanager's types.Alert.Merge, `new` being the younger: the earliest start; for a
    resolved alert the latest explicit end of two resolved ones; for a firing one the later
    end unless that end was only a timeout."""
    starts_at = min(kept.starts_at, new.starts_at)
    ends_at = new.ends_at
    if new.ends_at <= now:
        if kept.ends_at <= now and kept.ends_at > new.ends_at:
            ends_at = kept.ends_at
    elif kept.ends_at > new.ends_at and not kept.timeout:
        ends_at = kept.ends_at
    return replace(new, starts_at=starts_at, ends_at=ends_at, resolved=ends_at <= now)


def expired(kept: TrackedAlert, now: float) -> bool:
    """A firing alert whose `endsAt` passed without a fresh post: resolved now."""
    return not kept.resolved and kept.ends_at <= now


def _iso(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, UTC)


def as_posted(alert: TrackedAlert) -> dict[str, Any]:
    """The alert in the shape Prometheus posts it: templates read it as `body`."""
    return {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": _iso(alert.starts_at).isoformat(),
        "endsAt": _iso(alert.ends_at).isoformat(),
        "generatorURL": alert.generator_url,
    }


def event_of(alert: TrackedAlert, status: Status, received_at: datetime) -> Event:
    """The event the pipeline gets for one tracked alert: one alert, its labels to match on."""
    return Event(
        input=alert.input,
        kind=KIND,
        status=status,
        labels=alert.labels,
        annotations=alert.annotations,
        fingerprint=alert.fingerprint,
        received_at=received_at,
        alerts=(
            Alert(
                status=status,
                labels=alert.labels,
                annotations=alert.annotations,
                starts_at=_iso(alert.starts_at),
                # A firing alert's endsAt is only when it would time out: templates show none.
                ends_at=_iso(alert.ends_at) if status == "resolved" else None,
                generator_url=alert.generator_url,
                fingerprint=alert.fingerprint,
            ),
        ),
        payload=as_posted(alert),
    )
