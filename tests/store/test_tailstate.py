"""Contract: where each file input stopped in each file."""

from __future__ import annotations

from bridge.model import Position
from bridge.store.api import Store
from tests.store.values import NOW

A, B, C = (1, 10), (1, 11), (2, 10)


def test_an_input_runs_for_the_first_time_once(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.tailstate.first_run("log", NOW)
        assert not tx.tailstate.first_run("log", NOW + 1)
        assert tx.tailstate.first_run("other", NOW)


def test_positions_are_kept_per_input_and_file_identity(store: Store) -> None:
    with store.transaction() as tx:
        tx.tailstate.save("log", {A: Position("/a", 5, "ff", 5), B: Position("/b", 0, "", 0)}, NOW)
        tx.tailstate.save("other", {A: Position("/x", 1, "", 0)}, NOW)
        tx.tailstate.save("log", {A: Position("/a.1", 9, "ff", 5)}, NOW + 1)  # moved, grew
    with store.reading() as tx:
        assert tx.tailstate.load("log") == {
            A: Position("/a.1", 9, "ff", 5),
            B: Position("/b", 0, "", 0),
        }
        assert tx.tailstate.load("other") == {A: Position("/x", 1, "", 0)}
        assert tx.tailstate.load("none") == {}


def test_record_saves_and_forgets_in_one_go(store: Store) -> None:
    with store.transaction() as tx:
        tx.tailstate.save("log", {A: Position("/a", 5, "", 0), B: Position("/b", 3, "", 0)}, NOW)
        tx.tailstate.record("log", {C: Position("/c", 9, "", 0)}, [A], NOW + 1)
        tx.tailstate.forget("log", [(9, 9)])  # unknown: nothing happens
    with store.reading() as tx:
        assert set(tx.tailstate.load("log")) == {B, C}


def test_prune_forgets_files_not_seen_since_unless_kept(store: Store) -> None:
    with store.transaction() as tx:
        tx.tailstate.save("log", {A: Position("/a", 1, "", 0), B: Position("/b", 1, "", 0)}, NOW)
        tx.tailstate.save("log", {C: Position("/c", 1, "", 0)}, NOW + 100)
        tx.tailstate.save("other", {A: Position("/x", 1, "", 0)}, NOW)
        assert tx.tailstate.prune("log", keep=[B], before=NOW) == 0  # seen at NOW: not before
        assert tx.tailstate.prune("log", keep=[B], before=NOW + 50) == 1
    with store.reading() as tx:
        assert set(tx.tailstate.load("log")) == {B, C}
        assert set(tx.tailstate.load("other")) == {A}
