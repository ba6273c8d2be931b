"""Access tokens for internal apps, cached and shared by every sender thread.

One token per app key, valid for `expires_in` (7200 s) minus a safety margin. When many threads
need a token at once, exactly one fetches it and the others wait for that fetch (no stampede on
/gettoken, which DingTalk throttles). A token DingTalk rejected is dropped only if it is still the
cached one, so N threads seeing the same 42001 cause one refetch, not N.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from bridge.clock import Clock

# fetch(api_base, app_key, app_secret) -> (token, expires_in seconds); raises DeliveryError.
Fetch = Callable[[str, str, str], tuple[str, float]]
T = TypeVar("T")
REFRESH_MARGIN = 300.0  # renew 5 minutes early: a token must not expire between fetch and use


@dataclass
class _Entry:
    token: str
    expires_at: float


class TokenCache:
    def __init__(self, fetch: Fetch, clock: Clock) -> None:
        self._fetch = fetch
        self._clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()
        self.fetches = 0

    def _lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, api_base: str, app_key: str, app_secret: str) -> str:
        key = (api_base, app_key)
        entry = self._entries.get(key)
        if entry and self._clock.time() < entry.expires_at:
            return entry.token
        with self._lock(key):
            entry = self._entries.get(key)  # another thread may have fetched while we waited
            if entry and self._clock.time() < entry.expires_at:
                return entry.token
            token, expires_in = self._fetch(api_base, app_key, app_secret)
            self.fetches += 1
            lifetime = (
                max(0.0, expires_in - REFRESH_MARGIN)
                if expires_in > REFRESH_MARGIN * 2
                else expires_in / 2
            )
            self._entries[key] = _Entry(token, self._clock.time() + lifetime)
            return token

    def invalidate(self, api_base: str, app_key: str, token: str) -> None:
        key = (api_base, app_key)
        with self._lock(key):
            entry = self._entries.get(key)
            if entry and entry.token == token:
                del self._entries[key]

    def with_token(
        self,
        api_base: str,
        app_key: str,
        app_secret: str,
        call: Callable[[str], T],
        stale: Callable[[T], bool],
    ) -> T:
        """`call(token)` with the app's token; if DingTalk says the token is no good
        (`stale(answer)`), drop it and call once more with a fresh one (dingtalk-sdk and the
        Stream SDK do the same). The last answer, whatever it is."""
        token = self.get(api_base, app_key, app_secret)
        answer = call(token)
        if stale(answer):
            self.invalidate(api_base, app_key, token)
            answer = call(self.get(api_base, app_key, app_secret))
        return answer
