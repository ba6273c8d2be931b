"""Rate-limit maths: when may a target be called next? Pure: the send history and `now` are given.

A robot may post at most 20 messages in any 60 seconds (reference/dingtalk.md §1.7); the 21st
locks it for 10 minutes. We keep the history of our own calls and never make the call that would
exceed the window, with a small safety margin for clock differences between us and DingTalk.
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge.config.model import RateLimit

SAFETY_MARGIN = 1.0  # seconds added to every window: DingTalk's clock is not ours


def next_slot(limit: RateLimit, history: Iterable[float], now: float) -> float:
    """The earliest time >= now at which one more call keeps every window of `per` seconds at
    no more than `messages` calls."""
    if limit.unlimited:
        return now
    window = limit.per + SAFETY_MARGIN
    recent = sorted(t for t in history if t > now - window)
    if len(recent) < limit.messages:
        return now
    # The call `messages` places back must leave the window first.
    return max(now, recent[-limit.messages] + window)
