"""The store's contract suite: what every backend of bridge.store.api.Store must do.

Each test gets `store` once per backend in BACKENDS, and `reopen` to open the same state again
(what a restart, or another replica, sees). A second backend is one more entry here: a function
that opens its store on a fresh state under a test's tmp_path, and the same state when called
again with the same path (PostgreSQL: a fresh database per test, from tests/pgcluster.py's
cluster, skipped without PostgreSQL). Tests of what only one backend has (SQLite's WAL, a full
disk, a corrupt file) stay with that backend (tests/test_e2e_state.py for SQLite).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.store.api import Store
from bridge.store.postgres import PostgresStore
from bridge.store.sqlite import SqliteStore

Opener = Callable[[Path], Store]


def _sqlite(request: pytest.FixtureRequest) -> Opener:
    return lambda where: SqliteStore(where / "state")


def _postgresql(request: pytest.FixtureRequest) -> Opener:
    url = str(request.getfixturevalue("pg_url"))  # one database per test: "where" is the test's
    return lambda where: PostgresStore(url)


# Each backend: given the test's request (for fixtures such as a database), its opener.
BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Opener]] = {
    "sqlite": _sqlite,
    "postgresql": _postgresql,
}


@pytest.fixture(params=sorted(BACKENDS))
def opener(request: pytest.FixtureRequest) -> Opener:
    return BACKENDS[request.param](request)


@pytest.fixture
def reopen(opener: Opener, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Open the test's state again (each one closed at the end of the test)."""
    opened: list[Store] = []

    def again() -> Store:
        opened.append(opener(tmp_path))
        return opened[-1]

    yield again
    for store in reversed(opened):
        store.close()


@pytest.fixture
def store(reopen: Callable[[], Store]) -> Store:
    return reopen()
