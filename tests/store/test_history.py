"""Contract: the history of sends, one record per attempt, searchable, paged and pruned."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from bridge.store.api import Store
from bridge.store.history import BODY_KEEP, RECENT_MAX
from bridge.store.records import Sent
from tests.store.values import NOW

BODY = (
    '{"msgtype":"markdown","markdown":{"title":"Disk full","text":"### Disk \\"full\\" on db-1"}}'
)
DELIVERED = Sent("m1", "ops", "disk", "delivered", NOW, 1, 1, 0, "ok", None, "Disk full", (BODY,))
RETRYING = Sent(
    "m2", "ops", "cpu", "retrying", NOW + 1, 1, 1, -1, "系统繁忙", "dingtalk_busy", "CPU hot",
    ('{"msgtype":"text","text":{"content":"CPU hot"}}',),
)  # fmt: skip
DEAD = replace(RETRYING, outcome="dead", at=NOW + 2, attempt=2, errcode=310000,
               errmsg="keywords not in content", reason="config")  # fmt: skip
DIGEST = Sent(
    "m3+1", "people", "", "accepted", NOW + 3, 1, 1, None, None, None, "2 alerts",
    ('{"agent_id":1,"msg":{"msgtype":"text","text":{"content":"2 alerts"}}}',), ("m3", "m4"),
)  # fmt: skip
FAILED_TO_RENDER = Sent(
    "m5", "ops", "disk", "dead", NOW + 4, 1, 0, None, "KeyError: 'x'", "internal", "", ()
)
ALL = [DELIVERED, RETRYING, DEAD, DIGEST, FAILED_TO_RENDER]


@pytest.fixture
def recorded(store: Store) -> Store:
    with store.transaction() as tx:
        for sent in ALL:
            tx.history.record(sent)
    return store


def test_attempts_are_kept_as_recorded_and_read_back_after_a_restart(
    reopen: Callable[[], Store],
) -> None:
    store = reopen()
    with store.transaction() as tx:
        for sent in ALL:
            tx.history.record(sent)
    with reopen().reading() as tx:  # what a restart (or another replica) sees
        assert tx.history.recent() == list(reversed(ALL))  # newest first
        assert tx.history.attempts("m2") == [RETRYING, DEAD]  # oldest first
        assert tx.history.attempts("m5") == [FAILED_TO_RENDER]
        assert tx.history.attempts("nope") == []


def test_a_digests_record_is_an_attempt_of_every_message_it_carried(recorded: Store) -> None:
    with recorded.reading() as tx:
        assert tx.history.attempts("m3") == [DIGEST]
        assert tx.history.attempts("m4") == [DIGEST]
        assert tx.history.attempts("m3+1") == [DIGEST]
        assert tx.history.attempts("m") == []  # an id is matched whole


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("m2", ["m2", "m2"]),  # the id
        ("disk FULL", ["m1"]),  # the title (and a body), case-insensitive
        ("PEOPLE", ["m3+1"]),  # the target
        ("cpu", ["m2", "m2"]),  # the rule (and title)
        ("keywords not", ["m2"]),  # the errmsg
        ("系统繁忙", ["m2"]),
        ('Disk "full"', []),  # the body holds the quotes JSON-escaped
        ('\\"full\\" on', ["m1"]),  # a body's text, with its JSON escapes, literally
        ('"agent_id":1', ["m3+1"]),
        ("100%", []),  # LIKE's wildcards are literal
        ("m_", []),
    ],
)
def test_text_matches_id_title_target_rule_errmsg_or_a_body(
    recorded: Store, text: str, ids: list[str]
) -> None:
    with recorded.reading() as tx:
        assert [s.id for s in tx.history.recent(text=text)] == ids


def test_target_outcome_and_before_narrow_the_list(recorded: Store) -> None:
    with recorded.reading() as tx:
        assert tx.history.recent(target="people") == [DIGEST]
        assert tx.history.recent(outcome="dead") == [FAILED_TO_RENDER, DEAD]
        assert tx.history.recent(target="ops", outcome="dead", text="cpu") == [DEAD]
        assert tx.history.recent(before=NOW + 2) == [RETRYING, DELIVERED]


def test_paging_back_with_before_walks_every_record_once(recorded: Store) -> None:
    seen: list[Sent] = []
    before: float | None = None
    with recorded.reading() as tx:
        while page := tx.history.recent(limit=2, before=before):
            seen += page
            before = page[-1].at
    assert seen == list(reversed(ALL))


def test_limit_is_bounded(store: Store) -> None:
    with store.transaction() as tx:
        for n in range(RECENT_MAX + 5):
            tx.history.record(replace(DELIVERED, id=f"x{n}", at=NOW + n))
    with store.reading() as tx:
        assert len(tx.history.recent(limit=10_000)) == RECENT_MAX
        assert [s.id for s in tx.history.recent(limit=2)] == ["x504", "x503"]
        assert tx.history.recent(limit=0) == []


def test_a_body_beyond_the_bound_is_cut_with_a_marker(store: Store) -> None:
    huge = "告" * BODY_KEEP  # three bytes each
    with store.transaction() as tx:
        tx.history.record(replace(DELIVERED, bodies=(huge, BODY), errmsg="e" * 10_000))
    with store.reading() as tx:
        (kept,) = tx.history.recent()
    cut, whole = kept.bodies
    assert whole == BODY
    assert cut.startswith("告" * (BODY_KEEP // 3)) and cut.endswith("more bytes]")
    assert len(cut.encode()) < BODY_KEEP + 40
    assert f"[cut: {len(huge.encode()) - BODY_KEEP // 3 * 3} more bytes]" in cut
    assert kept.errmsg is not None and len(kept.errmsg) == 2000


def test_prune_forgets_old_records_then_all_but_the_newest(store: Store) -> None:
    with store.transaction() as tx:
        for n in range(10):
            tx.history.record(replace(DELIVERED, id=f"x{n}", at=NOW + n))
    with store.transaction() as tx:
        assert tx.history.prune(NOW + 3, 100) == 3  # x0..x2 ended before NOW + 3
    with store.transaction() as tx:
        assert tx.history.prune(NOW, 4) == 3  # then only the newest 4 stay
    with store.reading() as tx:
        assert [s.id for s in tx.history.recent()] == ["x9", "x8", "x7", "x6"]
    with store.transaction() as tx:
        assert tx.history.prune(NOW, 4) == 0
        assert tx.history.prune(NOW, 0) == 4
    with store.reading() as tx:
        assert tx.history.recent() == []
