"""What only the SQLite backend has to say: its errors reach callers as the store's."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bridge.errors import StoreError
from bridge.store.sqlite import SqliteStore


def test_a_locked_database_is_a_store_error_under_sqlite_s_name(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state", busy_timeout=0.05)
    holder = sqlite3.connect(store.path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process writing: the lock stays taken
        with pytest.raises(StoreError) as caught, store.transaction():
            pass
        # Logs say "OperationalError: database is locked", as they did before the protocol.
        assert f"{type(caught.value).__name__}: {caught.value}" == (
            "OperationalError: database is locked"
        )
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        # Within reading() too (a write there, against its use, only to meet the lock).
        with pytest.raises(StoreError, match="locked"), store.reading() as tx:
            tx.outbox.delivered(["x"])
        holder.execute("ROLLBACK")
        assert store.writable()
    finally:
        holder.close()
        store.close()
