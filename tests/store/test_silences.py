"""Contract: runtime silences and their Alertmanager links."""

from __future__ import annotations

from collections.abc import Callable

from bridge.alerting import matchers
from bridge.store.api import Store
from tests.store.values import NOW

TEAM_DB = (matchers.parse('team="db"'),)


def test_an_added_silence_loads_back_as_it_was_made(store: Store) -> None:
    with store.transaction() as tx:
        made = tx.silences.add(TEAM_DB, NOW, NOW + 3600, "upgrade", "ann", NOW)
    with store.reading() as tx:
        (loaded,) = tx.silences.load()
    assert loaded == made and made.id
    assert (loaded.matchers, loaded.starts_at, loaded.ends_at) == (TEAM_DB, NOW, NOW + 3600)
    assert (loaded.comment, loaded.author, loaded.source) == ("upgrade", "ann", "runtime")


def test_load_gives_the_silences_ending_after_a_time_by_start(store: Store) -> None:
    with store.transaction() as tx:
        late = tx.silences.add(TEAM_DB, NOW + 10, NOW + 100, "", "", NOW)
        ended = tx.silences.add(TEAM_DB, NOW - 100, NOW - 1, "", "", NOW)
        early = tx.silences.add(TEAM_DB, NOW, NOW + 50, "", "", NOW)
    with store.reading() as tx:
        assert [s.id for s in tx.silences.load(ended_after=NOW)] == [early.id, late.id]
        assert [s.id for s in tx.silences.load()] == [ended.id, early.id, late.id]


def test_expire_ends_the_one_active_silence_with_that_prefix(store: Store) -> None:
    with store.transaction() as tx:
        one = tx.silences.add(TEAM_DB, NOW, NOW + 100, "", "", NOW)
        two = tx.silences.add(TEAM_DB, NOW, NOW + 100, "", "", NOW)
    with store.transaction() as tx:
        assert sorted(tx.silences.expire("", NOW + 1)) == sorted([one.id, two.id])  # ambiguous
        assert tx.silences.expire("no-such", NOW + 1) == []
    with store.reading() as tx:
        assert len(tx.silences.load(ended_after=NOW + 1)) == 2  # nothing ended
    with store.transaction() as tx:
        assert tx.silences.expire(one.id[:6], NOW + 1) == [one.id]
    with store.reading() as tx:
        assert [s.id for s in tx.silences.load(ended_after=NOW + 1)] == [two.id]
    with store.transaction() as tx:
        assert tx.silences.expire(one.id, NOW + 2) == []  # no longer active


def test_a_silence_ended_early_remembers_who_ended_it(store: Store) -> None:
    with store.transaction() as tx:
        ended = tx.silences.add(TEAM_DB, NOW, NOW + 100, "", "ann", NOW)
        ran = tx.silences.add(TEAM_DB, NOW, NOW + 1, "", "ann", NOW)
    with store.transaction() as tx:
        assert tx.silences.expire(ended.id, NOW + 0.5, "bob (console)") == [ended.id]
    with store.reading() as tx:
        by = {s.id: (s.author, s.expired_by, s.ends_at) for s in tx.silences.load()}
    assert by[ended.id] == ("ann", "bob (console)", NOW + 0.5)
    assert by[ran.id] == ("ann", "", NOW + 1)  # ran its course: nobody ended it


def test_a_silence_remembers_its_alertmanager_twin(store: Store) -> None:
    with store.transaction() as tx:
        made = tx.silences.add(TEAM_DB, NOW, NOW + 100, "", "", NOW)
        assert tx.silences.linked(made.id) is None
        tx.silences.link(made.id, "am-1")
    with store.reading() as tx:
        assert tx.silences.linked(made.id) == "am-1"


def test_the_version_changes_with_every_change_seen_by_another_opening(
    store: Store, reopen: Callable[[], Store]
) -> None:
    other = reopen()  # another replica, or the CLI
    with other.reading() as tx:
        versions = [tx.silences.version()]
    with store.transaction() as tx:
        made = tx.silences.add(TEAM_DB, NOW, NOW + 3600, "", "ann", NOW)
    with other.reading() as tx:
        versions.append(tx.silences.version())
        assert tx.silences.version() == versions[-1]  # reading does not change it
    with store.transaction() as tx:
        assert tx.silences.expire("nomatch", NOW) == []
    with other.reading() as tx:
        assert tx.silences.version() == versions[-1]  # nothing expired, nothing changed
    with store.transaction() as tx:
        tx.silences.expire(made.id, NOW + 1)
    with other.reading() as tx:
        versions.append(tx.silences.version())
    assert len(set(versions)) == 3
