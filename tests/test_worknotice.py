"""Work notices: the unique line that keeps DingTalk's same-day dedup from eating our messages
while still absorbing a retry of one message."""

from __future__ import annotations

from datetime import UTC
from zoneinfo import ZoneInfo

import pytest

from bridge.config.model import WorkNoticeTarget
from bridge.dingtalk.channels import bodies_for
from bridge.dingtalk.worknotice import UNIQUE_PLACEHOLDER, unique_line
from bridge.model import Message

SHANGHAI = ZoneInfo("Asia/Shanghai")
T = 1_764_547_200.0  # 2025-12-01 00:00:00 UTC
# Two ids accepted in the same nanosecond-second: same time prefix, different random tails.
A = "187d0c7a2b3c4d5e" + "a1b2c3d4e5f60718"
B = "187d0c7a2b3c4d5e" + "0f1e2d3c4b5a6978"
WN = WorkNoticeTarget(name="wn", app_key="k", app_secret="s", agent_id=1, userids=("u1",))
MESSAGE = Message("markdown", "disk full", "### disk full on db1")


@pytest.mark.parametrize(
    ("ids", "accepted_at", "tz", "expected"),
    [
        ([A], T, UTC, "2025-12-01 00:00:00 · #c3d4e5f60718"),
        ([A], T, SHANGHAI, "2025-12-01 08:00:00 · #c3d4e5f60718"),  # the config's zone
        ([B], T, UTC, "2025-12-01 00:00:00 · #2d3c4b5a6978"),
        ([A], T + 59.9, UTC, "2025-12-01 00:00:59 · #c3d4e5f60718"),
        (["short"], T, UTC, "2025-12-01 00:00:00 · #short"),
    ],
)
def test_unique_line_table(ids: list[str], accepted_at: float, tz: ZoneInfo, expected: str) -> None:
    assert unique_line(ids, accepted_at, tz) == expected


def test_identical_messages_in_one_second_get_different_lines() -> None:
    """The old line used the id's first 8 hex digits (its time): equal for ~4 s."""
    assert A[:8] == B[:8]
    assert unique_line([A], T, UTC) != unique_line([B], T, UTC)


def test_a_retry_of_one_message_has_the_same_body() -> None:
    """Nothing depends on when it is sent: two tries build byte-identical bodies."""
    first = bodies_for(WN, MESSAGE, [A], T, SHANGHAI)
    again = bodies_for(WN, MESSAGE, [A], T, SHANGHAI)
    other = bodies_for(WN, MESSAGE, [B], T, SHANGHAI)
    assert first == again
    assert first != other
    assert "2025-12-01 08:00:00 · #c3d4e5f60718" in first[0]["msg"]["markdown"]["text"]


def test_digest_line_derives_from_every_id_it_merges() -> None:
    c = "187d0c7a2b3c4d5f" + "1111111111111111"
    ab = unique_line([A, B], T, UTC)
    ac = unique_line([A, c], T, UTC)
    assert ab.startswith("2025-12-01 00:00:00 · #c3d4e5f60718+1·")
    assert ab != ac  # same oldest message, same count, other batch: other content
    assert ab == unique_line([A, B], T, UTC)  # the same digest retried: the same content
    assert unique_line([A, B, c], T, UTC).startswith("2025-12-01 00:00:00 · #c3d4e5f60718+2·")


def test_placeholder_is_as_long_as_a_digest_line() -> None:
    many = [f"{i:032x}" for i in range(100)]
    assert len(UNIQUE_PLACEHOLDER) >= len(unique_line(many, T, UTC))
