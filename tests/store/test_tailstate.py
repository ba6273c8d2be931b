"""Contract: where each file input of each node stopped in each file."""

from __future__ import annotations

from collections.abc import Callable

from bridge.model import Position
from bridge.store.api import Store
from tests.store.values import NOW

A, B, C = (1, 10), (1, 11), (2, 10)
NODE, OTHER_NODE = "web-1", "web-2"


def test_an_input_runs_for_the_first_time_once(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.tailstate.first_run(NODE, "log", NOW)
        assert not tx.tailstate.first_run(NODE, "log", NOW + 1)
        assert tx.tailstate.first_run(NODE, "other", NOW)


def test_positions_are_kept_per_input_and_file_identity(store: Store) -> None:
    with store.transaction() as tx:
        tx.tailstate.save(
            NODE, "log", {A: Position("/a", 5, "ff", 5), B: Position("/b", 0, "", 0)}, NOW
        )
        tx.tailstate.save(NODE, "other", {A: Position("/x", 1, "", 0)}, NOW)
        tx.tailstate.save(NODE, "log", {A: Position("/a.1", 9, "ff", 5)}, NOW + 1)  # moved, grew
    with store.reading() as tx:
        assert tx.tailstate.load(NODE, "log") == {
            A: Position("/a.1", 9, "ff", 5),
            B: Position("/b", 0, "", 0),
        }
        assert tx.tailstate.load(NODE, "other") == {A: Position("/x", 1, "", 0)}
        assert tx.tailstate.load(NODE, "none") == {}


def test_record_saves_and_forgets_in_one_go(store: Store) -> None:
    with store.transaction() as tx:
        tx.tailstate.save(
            NODE, "log", {A: Position("/a", 5, "", 0), B: Position("/b", 3, "", 0)}, NOW
        )
        tx.tailstate.record(NODE, "log", {C: Position("/c", 9, "", 0)}, [A], NOW + 1)
        tx.tailstate.forget(NODE, "log", [(9, 9)])  # unknown: nothing happens
    with store.reading() as tx:
        assert set(tx.tailstate.load(NODE, "log")) == {B, C}


def test_prune_forgets_files_not_seen_since_unless_kept(store: Store) -> None:
    with store.transaction() as tx:
        tx.tailstate.save(
            NODE, "log", {A: Position("/a", 1, "", 0), B: Position("/b", 1, "", 0)}, NOW
        )
        tx.tailstate.save(NODE, "log", {C: Position("/c", 1, "", 0)}, NOW + 100)
        tx.tailstate.save(NODE, "other", {A: Position("/x", 1, "", 0)}, NOW)
        assert tx.tailstate.prune(NODE, "log", keep=[B], before=NOW) == 0  # seen at NOW: not before
        assert tx.tailstate.prune(NODE, "log", keep=[B], before=NOW + 50) == 1
    with store.reading() as tx:
        assert set(tx.tailstate.load(NODE, "log")) == {B, C}
        assert set(tx.tailstate.load(NODE, "other")) == {A}


# -- two replicas sharing the state, each tailing its own files ----------------------------------


def test_each_node_runs_an_input_for_the_first_time_once(
    reopen: Callable[[], Store],
) -> None:
    one, two = reopen(), reopen()  # two replicas on the same state
    with one.transaction() as tx:
        assert tx.tailstate.first_run(NODE, "log", NOW)
    with two.transaction() as tx:
        assert tx.tailstate.first_run(OTHER_NODE, "log", NOW + 1)  # not taken over from web-1
        assert not tx.tailstate.first_run(OTHER_NODE, "log", NOW + 2)
    with one.transaction() as tx:
        assert not tx.tailstate.first_run(NODE, "log", NOW + 3)


def test_nodes_never_see_or_change_each_others_positions(reopen: Callable[[], Store]) -> None:
    """The same input name, path and even (device, inode) on two hosts: two positions."""
    one, two = reopen(), reopen()
    with one.transaction() as tx:
        tx.tailstate.save(
            NODE,
            "log",
            {A: Position("/var/log/app.log", 50, "aa", 8), B: Position("/b", 1, "", 0)},
            NOW,
        )
    with two.transaction() as tx:
        tx.tailstate.save(OTHER_NODE, "log", {A: Position("/var/log/app.log", 7, "bb", 8)}, NOW)
        tx.tailstate.record(OTHER_NODE, "log", {}, [B], NOW)  # web-2 has no B: web-1's stays
        assert tx.tailstate.prune(OTHER_NODE, "log", keep=[], before=NOW + 10) == 1  # its own A
    with one.reading() as tx:
        assert tx.tailstate.load(NODE, "log") == {
            A: Position("/var/log/app.log", 50, "aa", 8),
            B: Position("/b", 1, "", 0),
        }
    with two.reading() as tx:
        assert tx.tailstate.load(OTHER_NODE, "log") == {}
