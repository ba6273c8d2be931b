"""What a file input needs of the state, and what it hands on with its events.

The tailer never touches the store (DESIGN.md, "Imports"): it asks `Offsets` where it stood,
and gives its new positions to `Submit` as data, with the events of the lines before them. The
composition root implements both over the store, and writes the positions in the transaction
that commits the events, so an offset advances exactly when those events are in the outbox.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from bridge.config.model import FileInput
from bridge.model import Accepted, Event, FileKey, Position


@dataclass(frozen=True)
class OffsetUpdate:
    """Positions reached (seen at `seen_at`, wall-clock seconds) and files to forget (deleted
    ones), to be committed with a batch of events or not at all."""

    positions: Mapping[FileKey, Position]
    forget: Collection[FileKey]
    seen_at: float


class Offsets(Protocol):
    """The committed positions of file inputs. Errors of the store pass through unchanged:
    the tailer retries its start, or its prune at the next round."""

    def first_run(self, input_name: str, now: float) -> bool:
        """True the first time an input runs (then `read_from` applies to the files there)."""
        ...

    def load(self, input_name: str) -> dict[FileKey, Position]: ...

    def prune(self, input_name: str, keep: Iterable[FileKey], before: float) -> int:
        """Forget positions of files not seen since `before` and not in `keep`; how many."""
        ...


class Submit(Protocol):
    """Commit `events` and `offsets` together, or raise (InputError or the store's error) and
    commit neither: the tailer then retries the same batch (back-pressure)."""

    def __call__(self, spec: FileInput, events: list[Event], offsets: OffsetUpdate) -> Accepted: ...
