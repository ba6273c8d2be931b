from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import Simulator


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    """A DingTalk simulator subprocess that knows the robots and apps used by the e2e tests."""
    sim = Simulator(
        spec={
            "robots": {
                "tok-plain": {},
                "tok-signed": {"secret": "SECtest-signing-secret", "keywords": ["告警"]},
            },
            "apps": {"app-key": {"app_secret": "app-secret", "agent_id": 4242}},
        }
    )
    yield sim
    sim.stop()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """Two robots without a rate limit, tok-a and tok-b (modules that need other robots define
    their own `sim`)."""
    sim = Simulator(
        spec={"robots": {"tok-a": {"rate_per_minute": 0}, "tok-b": {"rate_per_minute": 0}}}
    )
    yield sim
    sim.stop()
