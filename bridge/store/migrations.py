"""Schema versions, the same numbers for every backend: which steps a database still needs.

Each backend keeps its steps in order (store/schema.py for SQLite, store/pgschema.py for
PostgreSQL), step N bringing a database from version N-1 to N, and records the version reached
in its `meta` table (key 'schema_version') in the transaction of the step. A database written
by a newer bridge (a version this code has no step for) is refused, never written to: an older
bridge would misread what it does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bridge.store.statedir import StateError

VERSION_KEY = "schema_version"


@dataclass(frozen=True)
class Step:
    """Bring a database to `version` (from the one before): `script`, statements run together."""

    version: int
    script: str


def latest(steps: Sequence[Step]) -> int:
    return steps[-1].version


def pending(current: int | None, steps: Sequence[Step], where: str) -> list[Step]:
    """The steps a database at version `current` (None: no schema yet) still needs, in order.
    Raises StateError when `current` is newer than the last step."""
    if current is not None and current > latest(steps):
        raise StateError(
            f"state database {where} has schema version {current}, newer than this bridge knows"
            f" ({latest(steps)}): a newer bridge wrote it; run that version (or a newer one),"
            " not this one, on this database"
        )
    return [step for step in steps if current is None or step.version > current]


def describe(current: int | None, steps: Sequence[Step], where: str) -> str:
    """For `check`: the database's schema against this code's (raises StateError when newer)."""
    todo = pending(current, steps, where)
    if current is None:
        return f"no schema yet (version {latest(steps)} is created at the first start)"
    if todo:
        return f"schema version {current}, migrated to {latest(steps)} at the next start"
    return f"schema version {current} (current)"
