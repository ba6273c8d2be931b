"""The last few request bodies each input took, kept in the running process for the console's
playground ("try my template on what really arrived").

Bounded twice: at most `per_input` bodies per input (a deque drops the oldest) and at most
`max_bytes` per body (a larger one is not kept: a cut JSON body would not parse, and the
playground offers a body only as it came). Memory only: a restart forgets them, and nothing
here reaches the store or the log. The router records a body after its 200 answer, outside the
intake's transaction (bridge/inputs/http.py).

With `server.workers`, each worker took some of the bodies: `shared` is what a worker hands its
siblings (app/siblings.py writes it beside its snapshot when it changed; SHARED_MAX_BYTES of
bodies at most, the newest first), and `newest` merges its own with theirs, so the playground
offers the same bodies whichever worker serves the page.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

PER_INPUT = 5
MAX_BODY_BYTES = 256 * 1024
SHARED_MAX_BYTES = 2 * 1024 * 1024  # of bodies a worker hands its siblings (base64: a third more)


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
        self.version = 0  # changes whenever what is kept changes (siblings rewrite `shared`)

    def record(self, input_name: str, at: float, body: bytes) -> None:
        if not body or len(body) > self._max_bytes:
            return
        with self._lock:
            kept = self._by_input.get(input_name)
            if kept is None:
                kept = self._by_input[input_name] = deque(maxlen=self._per_input)
            kept.append(Received(input_name, at, body))
            self.version += 1

    def recent(self, input_name: str) -> list[Received]:
        """The bodies `input_name` took, newest first."""
        with self._lock:
            return list(reversed(self._by_input.get(input_name, ())))

    def forget(self, keep: set[str]) -> None:
        """Drop the bodies of inputs no longer configured (after a reload)."""
        with self._lock:
            for name in set(self._by_input) - keep:
                del self._by_input[name]
                self.version += 1

    def shared(self, max_bytes: int = SHARED_MAX_BYTES) -> dict[str, list[list[Any]]]:
        """What is kept, as JSON for the siblings: {input: [[at, base64 body], ...]}, newest
        first; the oldest bodies beyond `max_bytes` in all are left out."""
        with self._lock:
            every = [got for kept in self._by_input.values() for got in kept]
        out: dict[str, list[list[Any]]] = {}
        total = 0
        for got in sorted(every, key=lambda r: r.at, reverse=True):
            total += len(got.body)
            if total > max_bytes:
                break
            out.setdefault(got.input, []).append(
                [got.at, base64.b64encode(got.body).decode("ascii")]
            )
        return out


def from_shared(data: Any, input_name: str) -> list[Received]:
    """`input_name`'s bodies in a sibling's `shared` (its file may be half-known: anything
    malformed is skipped)."""
    entries = data.get(input_name) if isinstance(data, dict) else None
    found: list[Received] = []
    for entry in entries if isinstance(entries, list) else ():
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], str)):
            continue
        at, text = entry
        if not isinstance(at, int | float) or isinstance(at, bool):
            continue
        try:
            body = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            continue
        found.append(Received(input_name, float(at), body))
    return found


def newest(lists: Iterable[list[Received]], per_input: int = PER_INPUT) -> list[Received]:
    """The `per_input` newest of several workers' bodies of one input, newest first."""
    return heapq.nlargest(per_input, (got for one in lists for got in one), key=lambda r: r.at)
