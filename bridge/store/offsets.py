"""The file inputs' committed positions over any store: their `Offsets`, for one node.

`StoreOffsets` answers bridge/inputs/filetail/offsets.py's `Offsets` protocol (met by shape, so
the store imports nothing of the inputs); each call is its own transaction. It is bound to this
process's node id (`state: {node_id}`), so the tailer knows nothing of nodes and a replica only
ever sees its own positions. The positions that advance with events are written by the
composition root, in the transaction of those events, under the same node id.
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge.model import FileKey, Position
from bridge.store.api import Store


class StoreOffsets:
    """The committed positions of `node`'s file inputs (their `Offsets`), each call its own
    transaction."""

    def __init__(self, store: Store, node: str) -> None:
        self.store = store
        self.node = node

    def first_run(self, input_name: str, now: float) -> bool:
        with self.store.transaction() as tx:
            return tx.tailstate.first_run(self.node, input_name, now)

    def load(self, input_name: str) -> dict[FileKey, Position]:
        with self.store.reading() as tx:
            return tx.tailstate.load(self.node, input_name)

    def prune(self, input_name: str, keep: Iterable[FileKey], before: float) -> int:
        with self.store.transaction() as tx:
            return tx.tailstate.prune(self.node, input_name, keep, before)
