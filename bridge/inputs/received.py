"""The last few request bodies each input took, kept in the running process for the console's
playground ("try my template on what really arrived").

Bounded twice: at most `per_input` bodies per input (a deque drops the oldest) and at most
`max_bytes` per body (a larger one is not kept: a cut JSON body would not parse, and the
playground offers a body only as it came). Memory only: a restart forgets them, and nothing
here reaches the store or the log. The router records a body after its 200 answer, outside the
intake's transaction (bridge/inputs/http.py).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

PER_INPUT = 5
MAX_BODY_BYTES = 256 * 1024


@dataclass(frozen=True)
class Received:
    input: str
    at: float  # when it was taken (epoch s)
    body: bytes


class ReceivedBodies:
    def __init__(self, per_input: int = PER_INPUT, max_bytes: int = MAX_BODY_BYTES) -> None:
        self._per_input = per_input
        self._max_bytes = max_bytes
        self._by_input: dict[str, deque[Received]] = {}
        self._lock = threading.Lock()  # the HTTP server's threads record concurrently

    def record(self, input_name: str, at: float, body: bytes) -> None:
        if not body or len(body) > self._max_bytes:
            return
        with self._lock:
            kept = self._by_input.get(input_name)
            if kept is None:
                kept = self._by_input[input_name] = deque(maxlen=self._per_input)
            kept.append(Received(input_name, at, body))

    def recent(self, input_name: str) -> list[Received]:
        """The bodies `input_name` took, newest first."""
        with self._lock:
            return list(reversed(self._by_input.get(input_name, ())))

    def forget(self, keep: set[str]) -> None:
        """Drop the bodies of inputs no longer configured (after a reload)."""
        with self._lock:
            for name in set(self._by_input) - keep:
                del self._by_input[name]
