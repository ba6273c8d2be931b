"""Retry delays: exponential with full jitter, capped. Pure given the random source."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_ceiling(attempt: int, base: float = 1.0, cap: float = 60.0) -> float:
    """base·2^(attempt-1), capped: the wait before retry number `attempt` (1-based) without
    jitter. The exponent is bounded so thousands of retries cannot overflow a float."""
    return min(cap, base * 2.0 ** min(attempt - 1, 60))


def backoff_delay(
    attempt: int,
    base: float = 1.0,
    cap: float = 60.0,
    rand: Callable[[], float] = random.random,
    at_least: float | None = None,
) -> float:
    """Delay before retry number `attempt` (1-based): uniform in [0, min(cap, base·2^(attempt-1))],
    but never shorter than `at_least` (DingTalk's own wait, e.g. a rate-limit lockout)."""
    delay = rand() * backoff_ceiling(attempt, base, cap)
    return max(delay, at_least) if at_least is not None else delay
