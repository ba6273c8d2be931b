"""The replay memory of signed DingTalk requests (bridge/store/replays.py), as tables, and the
bridge's two uses of it: a callback remembered in the commit of its events, a chat command's
timestamp+sign pair claimed before it runs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.app.bridge import Bridge
from bridge.clock import FakeClock
from bridge.config.model import CallbackInput
from bridge.errors import InputError
from bridge.inputs.callback import callback_event
from bridge.inputs.signed import SignedOnce, check_window, expires, sent_at
from bridge.store import records
from bridge.store.sqlite import SqliteStore
from tests.harness import compile_yaml

NOW = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
CONFIG = """
targets: {ops: {type: robot, webhook: "http://127.0.0.1:9/robot/send?access_token=t"}}
inputs:
  events:
    type: dingtalk_callback
    path: /events
    token: tok
    aes_key: Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7
    owner_key: ding1
  chat: {type: dingtalk_robot, path: /chat, app_secret: s3cret}
rules: [{name: all, targets: [ops]}]
"""


def test_claim_remembers_until_expiry_and_tells_same_from_other(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    t = NOW.timestamp()
    steps = [
        # (input, key, digest, expires, now) -> Seen
        (("cb", "n1", "d1", t + 10, t), records.Seen.NEW),
        (("cb", "n1", "d1", t + 10, t + 1), records.Seen.SAME),
        (("cb", "n1", "d2", t + 10, t + 2), records.Seen.OTHER),
        (("other-input", "n1", "d2", t + 10, t + 3), records.Seen.NEW),  # keys are per input
        (("cb", "n2", "d1", t + 5, t + 4), records.Seen.NEW),
        (("cb", "n1", "d2", t + 30, t + 11), records.Seen.NEW),  # n1 expired at t+10: pruned
    ]
    for args, expected in steps:
        with store.transaction() as tx:
            assert tx.replays.claim(*args) is expected, args
    with store.reading() as tx:
        assert tx.replays.count() == 1  # every expired row went, of any input: the new n1 stays
    store.close()


def test_the_memory_survives_reopening_the_store(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    with store.transaction() as tx:
        tx.replays.claim("cb", "n", "d", NOW.timestamp() + 60, NOW.timestamp())
    store.close()
    store = SqliteStore(tmp_path)
    with store.transaction() as tx:
        assert tx.replays.claim("cb", "n", "x", NOW.timestamp() + 60, NOW.timestamp()) is (
            records.Seen.OTHER
        )
    store.close()


@pytest.mark.parametrize(
    ("offset", "stale"),
    [(-3600.0, False), (-3601.0, True), (0.0, False), (60.0, False), (61.0, True), (3480, True)],
)
def test_the_window_is_max_age_back_and_a_minute_ahead(offset: float, stale: bool) -> None:
    now = NOW.timestamp()
    if stale:
        with pytest.raises(InputError) as caught:
            check_window(now + offset, now, 3600.0, "timestamp")
        assert (caught.value.status, caught.value.reason.value) == (400, "stale")
    else:
        check_window(now + offset, now, 3600.0, "timestamp")


@pytest.mark.parametrize(
    ("text", "seconds_too", "expected"),
    [
        ("1764338400000", False, 1764338400.0),
        ("1764338400", True, 1764338400.0),  # the Python demo's seconds, for callbacks
        ("1764338400", False, 1764338.4),  # chat: milliseconds only
        ("²³", False, None),
        ("١٢٣", False, None),
        ("-5", False, None),
        ("1" * 17, False, None),
        ("", False, None),
    ],
)
def test_sent_at_reads_ascii_milliseconds_only(
    text: str, seconds_too: bool, expected: float | None
) -> None:
    if expected is None:
        with pytest.raises(InputError) as caught:
            sent_at(text, "timestamp", seconds_too)
        assert caught.value.status == 400
    else:
        assert sent_at(text, "timestamp", seconds_too) == expected


def _bridge(tmp_path: Path) -> Bridge:
    config = compile_yaml(tmp_path, CONFIG)
    return Bridge(config, store=SqliteStore(tmp_path / "state"), clock=FakeClock(NOW.timestamp()))


def _outbox_rows(bridge: Bridge) -> int:
    with bridge.store.reading() as tx:
        return len(tx.outbox.listing(limit=1_000_000))


def test_a_callback_is_taken_once_and_its_copy_answered_again(tmp_path: Path) -> None:
    bridge = _bridge(tmp_path)
    spec = bridge.config.routed_inputs()["events"]
    assert isinstance(spec, CallbackInput)
    event = callback_event(spec, {"EventType": "user_add_org", "UserId": "u1"}, NOW)
    once = SignedOnce("events", "callback\nn1\n1", "digest-1", expires(NOW.timestamp(), 3600))
    first = bridge.accept_once(spec, [event], once)
    assert first is not None and first.messages == 1
    assert bridge.accept_once(spec, [event], once) is None  # the very same request again
    assert _outbox_rows(bridge) == 1  # and nothing queued for it
    other = SignedOnce("events", once.key, "digest-2", once.expires)
    with pytest.raises(InputError) as caught:
        bridge.accept_once(spec, [event], other)
    assert (caught.value.status, caught.value.reason.value) == (409, "replay")
    assert _outbox_rows(bridge) == 1
    assert bridge.intake.counters.events["events"] == 1  # only the first counted
    bridge.store.close()


def test_a_chat_pair_is_claimed_once_whatever_the_body(tmp_path: Path) -> None:
    bridge = _bridge(tmp_path)
    once = SignedOnce("chat", "chat\n1\nsig", "body-1", expires(NOW.timestamp(), 3600))
    bridge.claim(once)
    for digest in ("body-1", "body-2"):
        with pytest.raises(InputError) as caught:
            bridge.claim(SignedOnce("chat", once.key, digest, once.expires))
        assert (caught.value.status, caught.value.reason.value) == (409, "replay")
    bridge.store.close()
