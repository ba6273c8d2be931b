"""The access-token cache: one fetch for many users, renewal before expiry, no stampede."""

from __future__ import annotations

import threading
import time

from bridge.clock import FakeClock
from bridge.dingtalk.tokens import TokenCache


def test_one_fetch_serves_many_threads() -> None:
    calls: list[str] = []

    def fetch(base: str, key: str, secret: str) -> tuple[str, float]:
        calls.append(key)
        time.sleep(0.05)  # slow enough that every thread arrives while the fetch is running
        return "tok-1", 7200

    cache = TokenCache(fetch, FakeClock(1000.0))
    got: list[str] = []
    threads = [
        threading.Thread(target=lambda: got.append(cache.get("b", "k", "s"))) for _ in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["k"]
    assert got == ["tok-1"] * 20


def test_renewed_shortly_before_expiry() -> None:
    tokens = iter(["tok-1", "tok-2"])
    clock = FakeClock(1000.0)
    cache = TokenCache(lambda b, k, s: (next(tokens), 7200), clock)
    assert cache.get("b", "k", "s") == "tok-1"
    clock.advance(6800)  # 7200 - 300 s margin = 6900: still valid
    assert cache.get("b", "k", "s") == "tok-1"
    clock.advance(200)  # past 6900: renewed before DingTalk would reject it
    assert cache.get("b", "k", "s") == "tok-2"
    assert cache.fetches == 2


def test_invalidate_drops_only_the_rejected_token() -> None:
    tokens = iter(["tok-1", "tok-2", "tok-3"])
    cache = TokenCache(lambda b, k, s: (next(tokens), 7200), FakeClock(1000.0))
    first = cache.get("b", "k", "s")
    cache.invalidate("b", "k", first)
    second = cache.get("b", "k", "s")
    assert second == "tok-2"
    cache.invalidate("b", "k", first)  # a late report about the old token changes nothing
    assert cache.get("b", "k", "s") == "tok-2"


def test_apps_have_separate_tokens() -> None:
    cache = TokenCache(lambda b, k, s: (f"tok-{k}", 7200), FakeClock(1000.0))
    assert cache.get("b", "app1", "s") == "tok-app1"
    assert cache.get("b", "app2", "s") == "tok-app2"
