"""Retry delays: exponential with full jitter, capped. Pure given the random source."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_delay(
    attempt: int,
    base: float = 1.0,
    cap: float = 60.0,
    rand: Callable[[], float] = random.random,
    at_least: float | None = None,
) -> float:
    """Delay before retry number `attempt` (1-based): uniform in [0, min(cap, base·2^(attempt-1))],
    but never shorter than `at_least` (DingTalk's own wait, e.g. a rate-limit lockout)."""
    # The exponent is bounded so a message retried thousands of times cannot overflow a float.
    ceiling: float = min(cap, base * 2.0 ** min(attempt - 1, 60))
    delay = rand() * ceiling
    return max(delay, at_least) if at_least is not None else delay
