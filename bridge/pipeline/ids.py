"""Outbox ids: drawn by the caller of the pure decide step (it takes an id source)."""

from __future__ import annotations

import secrets
import time


def new_id() -> str:
    """32 hex digits: the time in nanoseconds, then 64 random bits. Ids of messages accepted
    later sort later, so the outbox's primary-key index grows at its end instead of touching a
    random page per insert (less written per commit), and the log reads in time order."""
    return f"{time.time_ns():016x}{secrets.randbits(64):016x}"
