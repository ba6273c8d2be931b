"""Delivery building blocks as tables: rate-limit slots, backoff, storm digests, the outbox
table and the JSON codec. Clocks are plain floats passed in; nothing sleeps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from bridge.config.model import HttpInput, RateLimit
from bridge.delivery.backoff import backoff_delay
from bridge.delivery.digest import Item, build_digest
from bridge.delivery.ratelimit import SAFETY_MARGIN, next_slot
from bridge.dingtalk.robot import robot_body
from bridge.dingtalk.sizing import TRUNCATED_MARKER, encode
from bridge.inputs.alertmanager import parse_notification
from bridge.model import Alert, Button, Delivery, Event, Link, Mention, Message
from bridge.store import records
from bridge.store.api import Store
from bridge.store.codec import event_from_json, event_to_json, message_from_json, message_to_json
from bridge.store.sqlite import SqliteStore
from tests.harness import fixture_json

NOW = 10_000.0
ROBOT = RateLimit(20, 60.0)
WINDOW = ROBOT.per + SAFETY_MARGIN  # 61 s

# --------------------------------------------------------------------------------------------
# next_slot
# --------------------------------------------------------------------------------------------


def calls(count: int, start: float, step: float = 1.0) -> list[float]:
    return [start + i * step for i in range(count)]


@dataclass(frozen=True)
class SlotCase:
    limit: RateLimit
    history: list[float]
    expected: float


SLOT_CASES: dict[str, SlotCase] = {
    "empty-history": SlotCase(ROBOT, [], NOW),
    "19-calls-in-window": SlotCase(ROBOT, calls(19, NOW - 19), NOW),
    "20-calls-oldest-leaves-window": SlotCase(ROBOT, calls(20, NOW - 30), NOW - 30 + WINDOW),
    "20-calls-unsorted": SlotCase(ROBOT, list(reversed(calls(20, NOW - 30))), NOW - 30 + WINDOW),
    "25-calls-the-20th-newest-decides": SlotCase(ROBOT, calls(25, NOW - 50), NOW - 50 + 5 + WINDOW),
    "20-calls-all-older-than-window": SlotCase(ROBOT, calls(20, NOW - 200), NOW),
    "old-calls-ignored-19-recent": SlotCase(
        ROBOT, [*calls(30, NOW - 500), *calls(19, NOW - 10, 0.5)], NOW
    ),
    "call-exactly-window-ago-has-left": SlotCase(ROBOT, [NOW - WINDOW, *calls(19, NOW - 19)], NOW),
    "call-just-inside-window-counts": SlotCase(
        ROBOT, [NOW - WINDOW + 0.5, *calls(19, NOW - 19)], NOW + 0.5
    ),
    "margin-is-added": SlotCase(RateLimit(1, 10.0), [NOW - 10.0], NOW + SAFETY_MARGIN),
    "two-per-ten-seconds": SlotCase(RateLimit(2, 10.0), [NOW - 5, NOW - 2], NOW - 5 + 11),
    "unlimited-ignores-history": SlotCase(RateLimit(0, 60.0), calls(500, NOW - 10, 0.01), NOW),
}


@pytest.mark.parametrize("case", SLOT_CASES.values(), ids=SLOT_CASES.keys())
def test_next_slot(case: SlotCase) -> None:
    slot = next_slot(case.limit, case.history, NOW)
    assert slot == pytest.approx(case.expected)
    assert slot >= NOW
    if not case.limit.unlimited:
        # one more call at `slot` keeps the (margin-widened) window within the limit
        window = case.limit.per + SAFETY_MARGIN
        in_window = [t for t in case.history if slot - window < t <= slot]
        assert len(in_window) + 1 <= case.limit.messages


# --------------------------------------------------------------------------------------------
# backoff_delay
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackoffCase:
    attempt: int
    rand: float
    expected: float
    base: float = 1.0
    cap: float = 60.0
    at_least: float | None = None


BACKOFF_CASES: dict[str, BackoffCase] = {
    **{f"attempt-{n}-full": BackoffCase(n, 1.0, float(2 ** (n - 1))) for n in range(1, 7)},
    "attempt-7-capped": BackoffCase(7, 1.0, 60.0),
    "attempt-30-capped": BackoffCase(30, 1.0, 60.0),
    "base-0.5": BackoffCase(4, 1.0, 4.0, base=0.5),
    "jitter-zero": BackoffCase(5, 0.0, 0.0),
    "jitter-half": BackoffCase(3, 0.5, 2.0),
    "jitter-half-of-cap": BackoffCase(12, 0.5, 30.0),
    "at-least-raises-a-short-delay": BackoffCase(3, 0.0, 5.0, at_least=5.0),
    "at-least-below-delay-ignored": BackoffCase(3, 1.0, 4.0, at_least=2.0),
    "at-least-beyond-cap-wins": BackoffCase(3, 1.0, 600.0, at_least=600.0),
    "at-least-zero": BackoffCase(2, 0.25, 0.5, at_least=0.0),
}


@pytest.mark.parametrize("case", BACKOFF_CASES.values(), ids=BACKOFF_CASES.keys())
def test_backoff_delay(case: BackoffCase) -> None:
    delay = backoff_delay(
        case.attempt, case.base, case.cap, rand=constant(case.rand), at_least=case.at_least
    )
    assert delay == pytest.approx(case.expected)


def constant(value: float) -> Callable[[], float]:
    return lambda: value


@pytest.mark.parametrize("attempt", [1, 2, 5, 6, 7, 50])
def test_backoff_full_jitter_spans_zero_to_ceiling(attempt: int) -> None:
    ceiling = min(60.0, 2.0 ** (attempt - 1))
    draws = [0.0, 0.1, 0.5, 0.9, 0.999]
    delays = [backoff_delay(attempt, 1.0, 60.0, rand=constant(r)) for r in draws]
    assert delays == pytest.approx([r * ceiling for r in draws])
    assert all(0.0 <= d <= ceiling for d in delays)


def test_backoff_many_attempts_stay_capped() -> None:
    assert backoff_delay(1100, 1.0, 60.0, rand=lambda: 1.0) == 60.0


# --------------------------------------------------------------------------------------------
# build_digest
# --------------------------------------------------------------------------------------------

LIMIT = 20_000


def uncut_body(message: Message) -> dict[str, Any]:
    """The robot body without robot_body's own truncation, so the digest alone must fit it."""
    return robot_body(message, limit=10**9)


BODY_OF: dict[str, Callable[[Message], dict[str, Any]]] = {
    "robot_body": robot_body,
    "robot_body-uncut": uncut_body,
}


def body_text(body: dict[str, Any]) -> str:
    text: str = body["markdown"]["text"]
    return text


DIGEST_TITLES: dict[str, tuple[tuple[str, ...], str]] = {
    "mixed": (
        ("firing", "resolved", "firing", "firing", "resolved"),
        "5 alerts (3 firing, 2 resolved)",
    ),
    "all-firing": (("firing",) * 5, "5 alerts (5 firing)"),
    "all-resolved": (("resolved",) * 5, "5 alerts (5 resolved)"),
}


@pytest.mark.parametrize(("statuses", "title"), DIGEST_TITLES.values(), ids=DIGEST_TITLES)
@pytest.mark.parametrize("body_of", BODY_OF.values(), ids=BODY_OF)
def test_digest_of_five_holds_all_and_counts_statuses(
    body_of: Callable[[Message], dict[str, Any]], statuses: tuple[str, ...], title: str
) -> None:
    items = [Item(f"[{s.upper()}] alert {i}", s, Mention()) for i, s in enumerate(statuses)]
    message, count = build_digest(items, 7, body_of, LIMIT, "en")
    assert count == 5
    assert message.msgtype == "markdown"
    assert message.title == title
    text = body_text(body_of(message))
    assert f"### {title}" in text
    assert "(7 were waiting)" in text
    for item in items:
        assert f"- {item.title}" in text


def long_items(count: int) -> list[Item]:
    return [
        Item(
            f"[{'FIRING' if i % 3 else 'RESOLVED'}] 磁盘告警 host-{i:04d} " + "x" * 150,
            "firing" if i % 3 else "resolved",
            Mention(),
        )
        for i in range(count)
    ]


@pytest.mark.parametrize("body_of", BODY_OF.values(), ids=BODY_OF)
def test_digest_of_2000_long_titles_is_cut_to_the_limit(
    body_of: Callable[[Message], dict[str, Any]],
) -> None:
    items = long_items(2000)
    message, count = build_digest(items, 2000, body_of, LIMIT, "en")
    assert 1 <= count < 2000
    body = body_of(message)
    assert len(encode(body)) <= LIMIT
    assert len(encode(uncut_body(message))) <= LIMIT  # fits without any truncation
    text = body_text(body)
    assert TRUNCATED_MARKER not in text
    assert all(f"- {item.title}" in text for item in items[:count])
    assert f"- {items[count].title}" not in text  # the rest stays queued
    firing = sum(1 for i in items[:count] if i.status == "firing")
    assert message.title == f"{count} alerts ({firing} firing, {count - firing} resolved)"
    # not needlessly small: at least as many as fit at (line + 64 bytes of slack) each
    overhead = len(encode(body_of(build_digest(items[:1], 2000, body_of, LIMIT, "en")[0])))
    line = max(len(encode({"": f"\n- {item.title}"})) - 7 for item in items)  # JSON-escaped
    assert count >= (LIMIT - overhead) // (line + 64)


def test_digest_takes_items_no_further_than_one_past_what_fits() -> None:
    """Titles are rendered as the digest takes them: the claimed rows that stay queued for
    the next digest are not rendered for this one."""
    items = long_items(2000)
    taken: list[int] = []

    def rendered_as_taken() -> Iterator[Item]:
        for index, item in enumerate(items):
            taken.append(index)
            yield item

    lazily, count = build_digest(rendered_as_taken(), 2000, robot_body, LIMIT, "en")
    assert 1 < count < 2000
    assert len(taken) == count + 1
    assert (lazily, count) == build_digest(items, 2000, robot_body, LIMIT, "en")


def test_digest_of_one_huge_item_holds_it() -> None:
    items = [Item("y" * 30_000, "firing", Mention()), *long_items(3)]
    message, count = build_digest(items, 4, robot_body, LIMIT, "en")
    assert count == 1
    assert message.title == "1 alerts (1 firing)"


MENTION_ITEMS = [
    Item("a", "firing", Mention(mobiles=("13800000001",), userids=("alice",))),
    Item("b", "firing", Mention(mobiles=("13800000001", "13800000002"), userids=("alice",))),
    Item("c", "resolved", Mention(userids=("bob", "alice"))),
    Item("d", "firing", Mention()),
]


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        pytest.param(
            MENTION_ITEMS,
            Mention(("13800000001", "13800000002"), ("alice", "bob"), False),
            id="merged-without-duplicates",
        ),
        pytest.param(
            [*MENTION_ITEMS, Item("e", "firing", Mention(all=True))],
            Mention(("13800000001", "13800000002"), ("alice", "bob"), True),
            id="at-all-kept",
        ),
        pytest.param(MENTION_ITEMS[3:], Mention(), id="no-mentions"),
    ],
)
def test_digest_merges_mentions(items: list[Item], expected: Mention) -> None:
    message, count = build_digest(items, len(items), robot_body, LIMIT, "en")
    assert count == len(items)
    assert message.mention == expected
    body = robot_body(message)
    assert body["at"] == {
        "atMobiles": list(expected.mobiles),
        "atUserIds": list(expected.userids),
        "isAtAll": expected.all,
    }
    for name in (*expected.mobiles, *expected.userids):
        assert body_text(body).count(f"@{name}") == 1


def mention_heavy_items(count: int) -> list[Item]:
    """Long titles, each paging its own person by a long (64-character) userid."""
    return [
        Item(
            f"alert {i:02d} " + "t" * 700,
            "firing",
            Mention(mobiles=(f"1380000{i:04d}",), userids=(f"user-{i:03d}-" + "u" * 55,)),
        )
        for i in range(count)
    ]


@pytest.mark.parametrize(
    "body_of",
    [
        pytest.param(uncut_body, id="robot_body-uncut"),
        pytest.param(robot_body, id="robot_body"),
    ],
)
def test_digest_never_holds_items_its_body_cuts_off(
    body_of: Callable[[Message], dict[str, Any]],
) -> None:
    items = mention_heavy_items(100)
    message, count = build_digest(items, 100, body_of, LIMIT, "en")
    text = body_text(body_of(message))
    assert TRUNCATED_MARKER not in text
    assert all(f"- {item.title}" in text for item in items[:count])
    assert len(encode(uncut_body(message))) <= LIMIT


# --------------------------------------------------------------------------------------------
# The outbox table
# --------------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = SqliteStore(tmp_path / "state")
    yield db
    db.close()


def delivery(id_: str, target: str = "ops", status: str = "firing") -> Delivery:
    return Delivery(
        id=id_,
        rule="r",
        target=target,
        message=Message("markdown", f"title {id_}", f"text {id_}", Mention(("13800000000",))),
        fingerprint=f"fp-{id_}",
        created_at=datetime.fromtimestamp(NOW, UTC),
        event_status="resolved" if status == "resolved" else "firing",
    )


def fill(store: Store) -> None:
    """Three pending rows for ops (created at NOW-30, NOW-20, NOW-10) and one for dev."""
    with store.transaction() as tx:
        tx.outbox.enqueue([delivery("c3")], NOW - 10)
        tx.outbox.enqueue([delivery("a1")], NOW - 30)
        tx.outbox.enqueue([delivery("b2", status="resolved")], NOW - 20)
        tx.outbox.enqueue([delivery("d4", target="dev")], NOW - 25)


def due_ids(store: Store, target: str, now: float, limit: int = 100) -> list[str]:
    with store.reading() as tx:
        return [r.id for r in tx.outbox.due(target, now, limit)]


DUE_CASES: dict[str, tuple[str, float, int, list[str]]] = {
    "oldest-first": ("ops", NOW, 100, ["a1", "b2", "c3"]),
    "limit-takes-the-oldest": ("ops", NOW, 2, ["a1", "b2"]),
    "not-before-respected": ("ops", NOW - 15, 100, ["a1", "b2"]),
    "not-before-inclusive": ("ops", NOW - 20, 100, ["a1", "b2"]),
    "nothing-due-yet": ("ops", NOW - 31, 100, []),
    "per-target": ("dev", NOW, 100, ["d4"]),
    "unknown-target": ("nobody", NOW, 100, []),
}


@pytest.mark.parametrize(("target", "now", "limit", "expected"), DUE_CASES.values(), ids=DUE_CASES)
def test_outbox_due(store: Store, target: str, now: float, limit: int, expected: list[str]) -> None:
    fill(store)
    assert due_ids(store, target, now, limit) == expected


def test_outbox_enqueue_keeps_the_delivery(store: Store) -> None:
    fill(store)
    with store.reading() as tx:
        (row,) = tx.outbox.find("b2")
    original = delivery("b2", status="resolved")
    assert (row.target, row.rule, row.fingerprint, row.event_status) == (
        "ops",
        "r",
        "fp-b2",
        "resolved",
    )
    assert row.message == original.message
    assert (row.status, row.attempts, row.parts_sent) == (records.PENDING, 0, 0)
    assert row.created_at == row.not_before == row.updated_at == NOW - 20


def test_outbox_lifecycle(store: Store) -> None:
    fill(store)
    # retry_later: attempts counted, not due until not_before
    with store.transaction() as tx:
        tx.outbox.retry_later(["a1"], NOW + 60, "network", None, "connection refused", NOW)
    assert due_ids(store, "ops", NOW) == ["b2", "c3"]
    assert due_ids(store, "ops", NOW + 59.9) == ["b2", "c3"]
    assert due_ids(store, "ops", NOW + 60) == ["a1", "b2", "c3"]
    with store.reading() as tx:
        (row,) = tx.outbox.find("a1")
        assert tx.outbox.next_due_at("ops") == NOW - 20
    assert (row.attempts, row.not_before, row.reason, row.errmsg) == (
        1,
        NOW + 60,
        "network",
        "connection refused",
    )
    with store.transaction() as tx:
        tx.outbox.retry_later(["a1"], NOW + 120, "busy", -1, "system busy", NOW + 60)
    # dead_letter: reason, errcode and errmsg kept; no longer due; listed as dead
    with store.transaction() as tx:
        tx.outbox.dead_letter(["a1"], "keyword", 310000, "keywords not in content", NOW + 130)
    assert due_ids(store, "ops", NOW + 1000) == ["b2", "c3"]
    with store.reading() as tx:
        dead = tx.outbox.listing(status=records.DEAD)
        assert tx.outbox.pending_count("ops") == 2
    assert [r.id for r in dead] == ["a1"]
    assert (dead[0].status, dead[0].attempts) == (records.DEAD, 3)
    assert (dead[0].reason, dead[0].errcode, dead[0].errmsg) == (
        "keyword",
        310000,
        "keywords not in content",
    )
    assert dead[0].updated_at == NOW + 130
    # revive: pending again, due now, attempts back to 0
    with store.transaction() as tx:
        assert tx.outbox.revive(["a1", "b2"], NOW + 200) == 1  # b2 is not dead
    with store.reading() as tx:
        (row,) = tx.outbox.find("a1")
        assert tx.outbox.listing(status=records.DEAD) == []
    assert (row.status, row.attempts, row.not_before) == (records.PENDING, 0, NOW + 200)
    assert due_ids(store, "ops", NOW + 200) == ["a1", "b2", "c3"]
    # delivered: gone
    with store.transaction() as tx:
        tx.outbox.delivered(["a1", "c3"])
    assert due_ids(store, "ops", NOW + 1000) == ["b2"]
    with store.reading() as tx:
        assert tx.outbox.find("a1") == []
        assert [r.id for r in tx.outbox.listing()] == ["d4", "b2"]


def test_outbox_progress_keeps_parts_sent(store: Store) -> None:
    fill(store)
    with store.transaction() as tx:
        tx.outbox.progress("a1", 2, NOW + 1)
        tx.outbox.retry_later(["a1"], NOW + 5, "network", None, None, NOW + 2)
    with store.reading() as tx:
        (row,) = tx.outbox.find("a1")
    assert (row.parts_sent, row.attempts, row.updated_at) == (2, 1, NOW + 2)
    (again,) = [r for r in _due_rows(store, "ops", NOW + 5) if r.id == "a1"]
    assert again.parts_sent == 2


def _due_rows(store: Store, target: str, now: float) -> list[records.Row]:
    with store.reading() as tx:
        return tx.outbox.due(target, now, 100)


def test_outbox_depth_per_target(store: Store) -> None:
    with store.reading() as tx:
        assert tx.outbox.depth() == {}
    fill(store)
    with store.transaction() as tx:
        tx.outbox.dead_letter(["a1"], "bad", 1, "x", NOW)  # dead letters are not queued
    with store.reading() as tx:
        assert tx.outbox.depth() == {"ops": (2, NOW - 20), "dev": (1, NOW - 25)}
        assert tx.outbox.pending_count() == 3


FIND_CASES: dict[str, tuple[str, list[str]]] = {
    "full-id": ("b2", ["b2"]),
    "prefix": ("abc", ["abc123", "abc456"]),
    "unique-prefix": ("abd", ["abd789"]),
    "no-match": ("zz", []),
    "percent-is-not-a-wildcard": ("%2", []),
    "underscore-is-not-a-wildcard": ("a_c", []),
    "end-of-id": ("456", ["abc456"]),
}


@pytest.mark.parametrize(("prefix", "expected"), FIND_CASES.values(), ids=FIND_CASES)
def test_outbox_find_by_part_of_the_id(store: Store, prefix: str, expected: list[str]) -> None:
    with store.transaction() as tx:
        for i, id_ in enumerate(["abc123", "abc456", "abd789", "b2"]):
            tx.outbox.enqueue([delivery(id_)], NOW + i)
    with store.reading() as tx:
        assert [r.id for r in tx.outbox.find(prefix)] == expected


# --------------------------------------------------------------------------------------------
# codec round trips
# --------------------------------------------------------------------------------------------

MESSAGES: dict[str, Message] = {
    "text-defaults": Message("text", "t", "plain body"),
    "markdown-with-mention": Message(
        "markdown",
        "[FIRING] 磁盘告警",
        '### 告警\n\n- a: "quoted" \\ back\n- emoji 🔥',
        mention=Mention(("13800000000", "13900000000"), ("user-1",), True),
    ),
    "link": Message("link", "L", "see", url="https://example.com/x?a=1&b=2", pic_url="https://p"),
    "action-card": Message(
        "actionCard",
        "card",
        "body",
        buttons=(Button("确认", "https://ack"), Button("Silence", "https://silence")),
        btn_orientation="1",
        url="https://single",
    ),
    "feed-card": Message(
        "feedCard",
        "feed",
        "",
        links=(Link("one", "https://1", "https://p1"), Link("two", "https://2")),
    ),
    "fallback": Message("markdown", "x", "y", fallback=True, mention=Mention(userids=("u",))),
}


@pytest.mark.parametrize("message", MESSAGES.values(), ids=MESSAGES.keys())
def test_message_round_trip(message: Message) -> None:
    again = message_from_json(message_to_json(message))
    assert again == message
    assert message_to_json(again) == message_to_json(message)


SHANGHAI = timezone(timedelta(hours=8))
T = datetime(2026, 11, 28, 13, 27, 49, 123456, tzinfo=UTC)


def _am_fixture_event() -> Event:
    spec = HttpInput(name="am", type="alertmanager", path="/am", token=None, max_body_bytes=1 << 20)
    (event,) = parse_notification(fixture_json("firing.json"), spec, T)
    return event


EVENTS: dict[str, Event] = {
    "webhook-no-alerts": Event(
        input="hook",
        kind="webhook",
        status="resolved",
        labels={"service": "pay", "名前": "値"},
        annotations={"summary": "ok"},
        fingerprint="f1",
        received_at=T,
        payload={"n": 1, "nested": {"list": [1, "two", None]}, "ok": True},
    ),
    "alerts-with-times": Event(
        input="am",
        kind="alertmanager",
        status="firing",
        labels={"alertname": "X"},
        annotations={},
        fingerprint="f2",
        received_at=datetime(2026, 11, 28, 21, 0, tzinfo=SHANGHAI),
        alerts=(
            Alert("firing", {"alertname": "X", "i": "1"}, {"s": "a"}, T, None, "http://g", "a1"),
            Alert(
                "resolved",
                {"alertname": "X", "i": "2"},
                {},
                T - timedelta(hours=1),
                datetime(2026, 11, 28, 21, 30, 5, tzinfo=SHANGHAI),
                "",
                "a2",
            ),
            Alert("firing", {}, {}, None, None, "", "a3"),
        ),
    ),
    "real-alertmanager-payload": _am_fixture_event(),
}


@pytest.mark.parametrize("event", EVENTS.values(), ids=EVENTS.keys())
def test_event_round_trip(event: Event) -> None:
    again = event_from_json(event_to_json(event))
    assert again == event
    assert again.received_at.utcoffset() == event.received_at.utcoffset()
    for before, after in zip(event.alerts, again.alerts, strict=True):
        for a, b in ((before.starts_at, after.starts_at), (before.ends_at, after.ends_at)):
            assert (a is None) == (b is None)
            if a is not None and b is not None:
                assert (a, a.utcoffset()) == (b, b.utcoffset())
    assert event_to_json(again) == event_to_json(event)
