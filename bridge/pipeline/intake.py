"""Accepting events: decide (silences, rules, dedup or grouping), then commit, in one transaction.

This is where an input's "accepted" becomes true: `accept` returns only after the messages it
produced (and the notification-log entries and group members that go with them) are committed to
the state store. If they cannot be committed, it raises a 503 so the sender (Alertmanager) retries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from bridge.alerting.silences import Silence
from bridge.config.model import Config, Input
from bridge.errors import InputError, Reason, StoreError
from bridge.logs import fmt_fields
from bridge.model import Accepted, Delivery, Event
from bridge.pipeline.commit import commit, log_queued
from bridge.pipeline.decide import decide
from bridge.pipeline.decision import Decision, Grouped, NotSentAgain
from bridge.pipeline.duplicates import Claim, claim_for
from bridge.pipeline.ids import new_id
from bridge.pipeline.state import DecidingView
from bridge.store.api import Store, Tx

log = logging.getLogger("bridge.intake")

_UNMATCHED_MEMORY = 10_000  # distinct unmatched events remembered so each is logged once
# Seconds between looks at the runtime silences' version (re-read when another process, or
# replica, added or expired one) and re-reads of the queue depths.
_REFRESH = 1.0


@dataclass
class Counters:
    events: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rejected: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    matched: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # per rule
    unmatched: int = 0
    silenced: int = 0
    deduplicated: int = 0
    grouped: int = 0
    duplicates: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # per input


class Intake:
    def __init__(
        self,
        store: Store,
        on_queued: Callable[[Iterable[str]], None],
        on_decided: Callable[[Decision, float], None] = lambda decision, at: None,
    ) -> None:
        self.store = store
        self.on_queued = on_queued
        # Told each committed batch's decision, after the commit (the console's index of
        # firing alerts, app/firing.py): nothing is added to the write transaction.
        self.on_decided = on_decided
        self.counters = Counters()
        # Guards the counters and caches. It is taken inside store transactions, so it must
        # never be held while waiting for the store (that order would deadlock).
        self._lock = threading.Lock()
        self._unmatched_seen: OrderedDict[str, None] = OrderedDict()
        self._runtime_silences: list[Silence] = []
        self._silences_version: str | None = None  # the store's, when they were read
        self._depths: dict[str, int] = {}
        self._refreshed = float("-inf")

    def _refresh(self, now: float) -> None:
        # Lock order is store, then self._lock (never the reverse): read first, then publish.
        if time.monotonic() - self._refreshed < _REFRESH:
            return
        self._refreshed = time.monotonic()
        with self.store.reading() as tx:
            # The version first: a change after it is read again at the next look.
            version = tx.silences.version()
            stale = version != self._silences_version
            silences = tx.silences.load(ended_after=now) if stale else None
            depths = {t: n for t, (n, _) in tx.outbox.depth().items()}
        with self._lock:
            if silences is not None:  # ended ones are dropped here; until then none matches
                self._runtime_silences = silences
                self._silences_version = version
            self._depths = depths

    def forget_cache(self) -> None:
        """Read silences and queue depths again at the next request (a silence was just added
        or expired here: it must apply to the very next alert)."""
        self._refreshed = float("-inf")
        self._silences_version = None

    def reject(self, input_name: str, reason: Reason) -> None:
        with self._lock:
            self.counters.rejected[(input_name, reason.value)] += 1

    def accept(
        self,
        config: Config,
        spec: Input,
        events: list[Event],
        now: datetime,
        also: Callable[[Tx], None] | None = None,
    ) -> Accepted:
        """Commit what `events` cause; `also` writes more in the same transaction (a file
        input's offsets, so they advance exactly when the events from their lines commit)."""
        stamp = now.timestamp()
        claim = claim_for(spec, events, stamp)

        def given(tx: Tx) -> list[Event]:
            return events

        return self._take(config, spec, given, now, claim, also)

    def accept_from(
        self, config: Config, spec: Input, events_of: Callable[[Tx], list[Event]], now: datetime
    ) -> Accepted:
        """Commit what the events `events_of` finds in the transaction cause: it reads and
        writes the state they come from (a prometheus input's alerts, pipeline/tracking.py),
        so that state changes exactly when their messages commit."""
        return self._take(config, spec, events_of, now, None, None)

    def _take(
        self,
        config: Config,
        spec: Input,
        events_of: Callable[[Tx], list[Event]],
        now: datetime,
        claim: Claim | None,
        also: Callable[[Tx], None] | None,
    ) -> Accepted:
        stamp = now.timestamp()
        try:
            # Inside the guard: the refresh reads the store too, and a store that cannot answer
            # is a 503 (retry), whichever read meets it first, never a 500.
            self._refresh(stamp)
            with self._lock:
                silences = [*config.silences, *self._runtime_silences]
            # Shared: concurrent requests commit together (no lock of ours is held in it).
            with self.store.transaction(share_commit=True) as tx:
                # Claimed first, in this transaction: a copy another replica commits meanwhile
                # makes one of the two claims fail (the store's claim is atomic).
                duplicate = claim is not None and not tx.duplicates.claim(
                    claim.input, claim.digest, claim.expires, stamp
                )
                events = events_of(tx)
                # Decided on what this transaction reads: nothing can change it before commit.
                decision = (
                    Decision(())
                    if duplicate
                    else decide(config.rules, silences, events, DecidingView(tx), now, new_id)
                )
                deliveries = decision.deliveries
                self._check_room(config, deliveries)
                commit(tx, decision, stamp)
                if also is not None:
                    also(tx)
        except StoreError as exc:
            log.error(fmt_fields("commit failed", input=spec.name, reason="store", error=str(exc)))
            raise InputError(
                503, Reason.STORE, "the state store cannot take it now; retry"
            ) from exc
        if duplicate and claim is not None:
            self.store.after_commit(partial(self._duplicate, spec, events, claim))
            return Accepted(duplicate_notifications=1)
        tally = tally_of(decision)
        # Logged, counted and told only once committed: in a batch (store.batch) that is at its
        # end, and a batch whose commit fails is served again, so nothing may count twice.
        self.store.after_commit(partial(self._committed, spec, events, decision, tally, stamp))
        return tally

    def _committed(
        self, spec: Input, events: list[Event], decision: Decision, tally: Accepted, stamp: float
    ) -> None:
        """What follows a committed decision: its log lines, the counters (from its `tally`),
        the senders woken."""
        deliveries = decision.deliveries
        self._tell(decision)
        log_queued(deliveries, input=spec.name)
        with self._lock:
            self.counters.events[spec.name] += len(events)
            for one in decision.events:
                for outcome in one.outcomes:
                    self.counters.matched[outcome.rule] += 1
            self.counters.silenced += tally.silenced
            self.counters.unmatched += tally.unmatched
            self.counters.deduplicated += tally.not_sent_again_yet
            self.counters.grouped += tally.held_for_grouping
            for d in deliveries:
                self._depths[d.target] = self._depths.get(d.target, 0) + 1
        if deliveries:
            self.on_queued({d.target for d in deliveries})
        self.on_decided(decision, stamp)

    def _duplicate(self, spec: Input, events: list[Event], claim: Claim) -> None:
        """A copy of a notification taken within its window: accepted (Alertmanager gets its
        200 and stops), nothing sent again."""
        with self._lock:
            self.counters.events[spec.name] += len(events)
            self.counters.duplicates[spec.name] += 1
        log.info(
            fmt_fields(
                "duplicate notification",
                input=spec.name,
                digest=claim.digest[:16],
                reason="dedup_window",
            )
        )

    def _check_room(self, config: Config, deliveries: list[Delivery]) -> None:
        """Refuse (503) rather than let one target's backlog grow without bound.

        A target is full once `queue_size` messages wait for it; what arrives before that is
        taken whole, even if it goes past the limit. (Counting the new messages against the
        limit instead would refuse forever a batch larger than the limit itself.)"""
        for target in {d.target for d in deliveries}:
            if self._depths.get(target, 0) >= config.targets[target].queue_size:
                log.warning(fmt_fields("queue full", target=target, reason="queue_full"))
                raise InputError(
                    503, Reason.QUEUE_FULL, f"target {target} is backlogged; retry later"
                )

    def _tell(self, decision: Decision) -> None:
        """The log lines of a committed decision."""
        for one in decision.events:
            for silenced in one.silenced:
                log.info(
                    fmt_fields(
                        "silenced",
                        input=one.event.input,
                        fingerprint=silenced.fingerprint,
                        silence=silenced.silence.id,
                        matchers=silenced.silence.describe(),
                    )
                )
            if one.kept is not None and one.unmatched:
                self._note_unmatched(one.kept)
            for outcome in one.outcomes:
                if isinstance(outcome, NotSentAgain):
                    log.debug(
                        fmt_fields(
                            "not sent again yet",
                            rule=outcome.rule,
                            fingerprint=outcome.fingerprint,
                            reason="repeat_interval",
                        )
                    )

    def _note_unmatched(self, event: Event) -> None:
        key = f"{event.input}/{event.fingerprint}"
        with self._lock:
            if key in self._unmatched_seen:
                return
            self._unmatched_seen[key] = None
            if len(self._unmatched_seen) > _UNMATCHED_MEMORY:
                self._unmatched_seen.popitem(last=False)
        labels = ",".join(f"{k}={v}" for k, v in sorted(event.labels.items()))
        log.info(
            fmt_fields(
                "no rule matched", input=event.input, fingerprint=event.fingerprint, labels=labels
            )
        )


def tally_of(decision: Decision) -> Accepted:
    """What became of a decision's events, for the input's answer."""
    tally = Accepted(messages=len(decision.deliveries))
    for one in decision.events:
        tally.silenced += len(one.silenced)
        if one.kept is not None and one.unmatched:
            tally.unmatched += 1
        for outcome in one.outcomes:
            if isinstance(outcome, Grouped):
                tally.held_for_grouping += 1
            elif isinstance(outcome, NotSentAgain):
                tally.not_sent_again_yet += 1
    return tally
