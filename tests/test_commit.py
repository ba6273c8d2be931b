"""The commit step on a real state store: a decision's outbox rows, notification-log entries and
group members are written together in the caller's transaction, and vanish together when that
transaction fails (after a crash, both exist or neither does)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.config.model import Config
from bridge.pipeline.commit import commit
from bridge.pipeline.decide import decide
from bridge.pipeline.decision import Decision
from bridge.pipeline.state import StoreView
from bridge.store.api import Store
from bridge.store.sqlite import SqliteStore
from tests.harness import compile_yaml
from tests.test_decide import CONFIG, NOW, event, ids

ROWS = [("id1", "ops"), ("id2", "dev")]  # "web" goes to both targets of the direct rule


@pytest.fixture
def state(tmp_path: Path) -> Iterator[tuple[Config, Store]]:
    """The test_decide config, and an empty state store beside it."""
    config: Config = compile_yaml(tmp_path, CONFIG)
    store = SqliteStore(tmp_path / "state")
    yield config, store
    store.close()


def written(store: Store) -> tuple[list[tuple[str, str]], bool, int]:
    """(outbox id and target per row, whether web's log entry exists, groups held)."""
    with store.reading() as tx:
        rows = [(r.id, r.target) for r in tx.outbox.listing(limit=100)]
        entry = tx.alertlog.get_entry("direct", "fp-web")
        groups = len(tx.groups.due(float("inf")))
    return sorted(rows), entry is not None, groups


def decided(config: Config, store: Store) -> Decision:
    with store.reading() as tx:
        view = StoreView(tx)
        return decide(config.rules, [], [event("web"), event("pay")], view, NOW, ids())


def test_commit_writes_rows_log_entry_and_group_together(state: tuple[Config, Store]) -> None:
    config, store = state
    decision = decided(config, store)
    with store.transaction() as tx:
        commit(tx, decision, NOW.timestamp())
    assert written(store) == (ROWS, True, 1)


def test_a_failed_transaction_leaves_none_of_them(state: tuple[Config, Store]) -> None:
    config, store = state
    decision = decided(config, store)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        commit(tx, decision, NOW.timestamp())
        raise RuntimeError("the commit fails after the writes")
    assert written(store) == ([], False, 0)


def test_what_was_committed_is_not_sent_again(state: tuple[Config, Store]) -> None:
    config, store = state
    with store.transaction() as tx:
        commit(tx, decided(config, store), NOW.timestamp())
    again = decided(config, store)
    assert again.deliveries == []  # web: told a moment ago; pay: held in its group
