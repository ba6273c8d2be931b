"""Which store the bridge opens: the composition root and the CLI ask here, never a backend.

SQLite (store/sqlite.py) is the only backend so far; a second one is chosen here from the config
(issue 13: PostgreSQL for several replicas), and passes the contract suite in tests/store/.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from bridge.store import sqlite
from bridge.store.api import ReadTx, Store
from bridge.store.sqlite import SqliteStore


def open_store(directory: Path, synchronous: str = "normal", busy_timeout: float = 5.0) -> Store:
    """The state store in `directory`. Raises StateError (what is wrong, where, what to do)
    when it cannot be opened."""
    return SqliteStore(directory, synchronous, busy_timeout)


def read_only(directory: Path) -> AbstractContextManager[ReadTx | None]:
    """The state in `directory` for reading only, without taking part in a running daemon's
    store (None inside when there is none yet)."""
    return sqlite.read_only(directory)
