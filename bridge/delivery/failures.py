"""What becomes of a message whose send failed. Pure: the typed outcome, the policy, the clock's
reading and the robot's probe time are given.

Permanent failure (Refused), or undelivered for longer than give_up_after: a dead letter with the
reason. A lockout (LockedOut): every target of the robot waits it out instead of extending it
with more calls. The robot failing (an outage): the next try is the robot's next probe, with the
oldest message again. Anything else: an exponential backoff with jitter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bridge.config.model import SendPolicy
from bridge.dingtalk.responses import Failed, LockedOut, Refused, RetryLater


@dataclass(frozen=True)
class DeadLetter:
    reason: str  # the failure's reason, "expired:<reason>" when give_up_after ran out
    # The robot is down and this message expired: the other pending messages past give_up_after
    # go too, else each would wait a probe (up to retry.max apart) to expire.
    sweep_expired: bool = False


@dataclass(frozen=True)
class Retry:
    not_before: float
    lockout: float | None = None  # the robot's (or app's) lockout ends then


def is_outage(failed: Failed) -> bool:
    """The robot, not this message, is failing: retry by probing with one message at a time."""
    return isinstance(failed, RetryLater) and failed.outage


def after_failure(
    failed: Failed,
    policy: SendPolicy,
    created_at: float,
    attempts: int,
    now: float,
    probe_at: float,
    retry_at: Callable[[int], float],
) -> DeadLetter | Retry:
    """`created_at`/`attempts`: of the message's oldest row; `probe_at`: when the robot takes its
    next probe (from its window); `retry_at(n)`: when retry number `n` may go (the backoff)."""
    expired = now - created_at > policy.give_up_after
    if isinstance(failed, Refused) or expired:
        reason = f"expired:{failed.reason.value}" if expired else failed.reason.value
        return DeadLetter(reason, sweep_expired=expired and is_outage(failed))
    if isinstance(failed, LockedOut):
        lockout = now + failed.seconds
        return Retry(lockout, lockout)
    if is_outage(failed):
        return Retry(probe_at)  # the probe after this one: the oldest message again
    return Retry(retry_at(attempts + 1))
