from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bridge.store.postgres import PostgresStore
from tests.harness import Simulator
from tests.pgcluster import Cluster, find_binaries


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


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster for this session (this xdist worker); skipped without PostgreSQL."""
    bindir, why = find_binaries()
    if bindir is None:
        if os.environ.get("CI"):  # .ci/run installs postgresql: there a skip would hide a gap
            pytest.fail(f"{why}, and CI must run the PostgreSQL tests", pytrace=False)
        pytest.skip(why)
    cluster = Cluster(bindir)
    yield cluster
    cluster.close()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of a fresh database with the bridge's schema, dropped after the test."""

    def prepare(url: str) -> None:
        PostgresStore(url).close()

    pg_cluster.template_ready(prepare)
    name = pg_cluster.new_database()
    yield pg_cluster.url(name)
    pg_cluster.drop_database(name)
