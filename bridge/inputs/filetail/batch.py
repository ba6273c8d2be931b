"""What an input read, on its way to the outbox: events and positions, committed together.

Offsets are committed in the same transaction as the outbox rows of the events read before
them: the batch hands them to `submit` with the events (see offsets.py) and never touches the
store itself. When the intake refuses (the store is busy, or a target's queue is full) the same
batch is retried and the input waits meanwhile: back-pressure, never a dropped line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.clock import Clock
from bridge.config.model import FileInput
from bridge.errors import InputError, StoreError
from bridge.inputs.filetail.multiline import Record
from bridge.inputs.filetail.offsets import OffsetUpdate, Submit
from bridge.inputs.filetail.records import ThresholdWindow, find_pattern, make_event
from bridge.inputs.filetail.status import TailStats
from bridge.logs import fmt_fields
from bridge.model import Event, FileKey, Position

log = logging.getLogger("bridge.inputs.file")

RETRY_AFTER = 1.0  # seconds before retrying a batch the intake refused


@dataclass
class Pending:
    """Not committed yet: events, the positions reached, and the files to forget."""

    events: list[Event] = field(default_factory=list)
    positions: dict[FileKey, Position] = field(default_factory=dict)
    forget: set[FileKey] = field(default_factory=set)


class Batch:
    def __init__(
        self,
        spec: FileInput,
        submit: Submit,
        stats: TailStats,
        clock: Clock,
        monotonic: Callable[[], float],
        stopping: threading.Event,
    ) -> None:
        self.spec = spec
        self.submit = submit
        self.stats = stats
        self.clock = clock
        self.monotonic = monotonic
        self.stopping = stopping  # a refused batch is not retried once this is set
        self.pending = Pending()
        self.last_commit = 0.0
        self._threshold = ThresholdWindow(spec.threshold) if spec.threshold else None

    def add_records(self, path: str, records: list[Record]) -> None:
        """The events of the records that match a pattern (and pass the threshold, if any)."""
        if not records:
            return
        when = self.clock.now()
        for record in records:
            found = find_pattern(self.spec, record.text)
            if found is None:
                continue
            self.stats.lines_matched += 1
            extra: dict[str, Any] = {}
            if self._threshold is not None:
                count = self._threshold.hit(self.monotonic())
                if count is None:
                    self.stats.below_threshold += 1
                    continue
                extra = {"count": count, "within": self._threshold.spec.within}
            pattern, groups = found
            self.pending.events.append(
                make_event(self.spec, path, record, pattern, groups, when, extra)
            )

    def position(self, key: FileKey, position: Position) -> None:
        self.pending.positions[key] = position

    def forget(self, key: FileKey) -> None:
        """A deleted file: its position goes from the store with this batch."""
        self.pending.forget.add(key)
        self.pending.positions.pop(key, None)

    def commit(self, force: bool) -> None:
        """Commit the events, and with `force` also positions that moved without events;
        retried until the intake takes it or the input stops (then the final commit tries once
        more; else it is read again after a restart)."""
        pending = self.pending
        if not pending.events and not (force and (pending.positions or pending.forget)):
            return
        offsets = OffsetUpdate(pending.positions, pending.forget, self.clock.time())
        while True:
            try:
                self.submit(self.spec, pending.events, offsets)
                break
            except (InputError, StoreError) as exc:
                self.stats.refused_batches += 1
                log.warning(
                    fmt_fields(
                        "file input paused, the outbox refused its lines; retrying",
                        input=self.spec.name,
                        events=len(pending.events),
                        reason=getattr(exc, "reason", "store"),
                    )
                )
                if self.stopping.is_set() or self.stopping.wait(RETRY_AFTER):
                    return
        self.stats.events += len(pending.events)
        self.pending = Pending()
        self.last_commit = self.monotonic()
