"""Which store the bridge opens: the composition root and the CLI ask here, never a backend.

SQLite (store/sqlite.py) in the config's state_dir is the default; `state: {url}` in the config
puts the state in PostgreSQL instead (store/postgres.py). Both pass the contract suite in
tests/store/.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from bridge.config.dburl import redacted
from bridge.config.model import Config
from bridge.store import sqlite
from bridge.store.api import ReadTx, Store
from bridge.store.sqlite import SqliteStore
from bridge.store.statedir import verify_state_dir


def open_store(config: Config, busy_timeout: float = 5.0) -> Store:
    """The state store the config names. Raises StateError (what is wrong, where, what to do)
    when it cannot be opened."""
    if config.state_url is not None:
        from bridge.store.postgres import PostgresStore  # psycopg only when it is used

        return PostgresStore(config.state_url, timeout=busy_timeout)
    return SqliteStore(config.state_dir, config.synchronous, busy_timeout)


def describe(config: Config) -> str:
    """Where the state is, fit for a log line (a database URL without its password)."""
    return redacted(config.state_url) if config.state_url else str(config.state_dir)


def verify(config: Config) -> str:
    """For `check`: can the state the config names be used, and is its schema current? Changes
    nothing; what was found, or StateError."""
    if config.state_url is not None:
        from bridge.store.postgres import verify_database

        return verify_database(config.state_url)
    return verify_state_dir(config.state_dir)


def read_only(config: Config) -> AbstractContextManager[ReadTx | None]:
    """The state the config names, for reading only, without taking part in a running daemon's
    store and without creating or migrating anything (None inside when there is none yet)."""
    if config.state_url is not None:
        from bridge.store import postgres

        return postgres.read_only(config.state_url)
    return sqlite.read_only(config.state_dir)
