"""Several replicas, one PostgreSQL state: each message is sent once (the claims of
delivery/claims.py), a replica killed with SIGKILL while it holds rows leaves them to another once
its lease ends, a database restart loses no acknowledged alert, and a sender idle on a long poll
wakes as soon as another replica queues a row (LISTEN/NOTIFY, store/pglisten.py).

Real daemons (two processes of `dingtalk-bridge run`) share one database of the session's
throwaway cluster (tests/pgcluster.py) and post to one simulator; skipped without PostgreSQL.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from tests.harness import (
    Daemon,
    Simulator,
    am_alert_payload,
    metric_value,
    quick_robot_config,
    scrape_metrics,
    wait_until,
)
from tests.pgcluster import Cluster

Replicas = Callable[..., Daemon]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    sim = Simulator(spec={"robots": {"tok-a": {"rate_per_minute": 0}}})
    yield sim
    sim.stop()


@pytest.fixture
def replicas() -> Iterator[Replicas]:
    """Start daemons (stopped at the end of the test, those still running)."""
    started: list[Daemon] = []

    def start(config: dict[str, Any], env: dict[str, str] | None = None) -> Daemon:
        started.append(Daemon(config, env=env))
        return started[-1]

    yield start
    for daemon in started:
        daemon.stop()


def config(sim: Simulator, url: str, **target: Any) -> dict[str, Any]:
    """One robot without a rate limit, retried fast, digests off (each alert its own message,
    so each can be counted); `target` overrides."""
    cfg = quick_robot_config(sim, state={"url": url, "lease": "10s"})
    cfg["targets"]["ops"].update({"digest": {"enabled": False}, **target})
    return cfg


def arrivals(sim: Simulator) -> Counter[str]:
    """How many times each alert reached the chat, by alertname (the title's last word)."""
    return Counter(m["title"].split()[-1] for m in sim.messages(token="tok-a"))


def inject(sim: Simulator, action: dict[str, Any], count: int = 1) -> None:
    sim.control(
        "faults", {"path": "/robot/send", "token": "tok-a", "count": count, "action": action}
    )


def faults_left(sim: Simulator) -> list[dict[str, Any]]:
    faults: list[dict[str, Any]] = requests.get(f"{sim.url}/_sim/faults", timeout=5).json()[
        "faults"
    ]
    return faults


def replica_id(daemon: Daemon) -> str:
    ready = requests.get(f"{daemon.url}/-/ready", timeout=30).json()
    replica: str = ready["replica"]
    return replica


def claims(url: str) -> list[tuple[str, str | None]]:
    """(the queued event, claimed_by) of each row still in the outbox."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT event, claimed_by FROM outbox").fetchall()
    return [(str(event), by) for event, by in rows]


def test_two_replicas_send_each_alert_exactly_once(
    sim: Simulator, pg_url: str, replicas: Replicas
) -> None:
    cfg = config(sim, pg_url)
    pair = [replicas(cfg), replicas(cfg)]
    names = [f"Once{i:03d}" for i in range(60)]
    for index, name in enumerate(names):  # to each replica in turn, as a load balancer would
        assert pair[index % 2].post("/am", am_alert_payload(name)).status_code == 200
    wait_until(lambda: set(arrivals(sim)) >= set(names), timeout=60, interval=0.2)
    time.sleep(1.5)  # a second send, were there one, would land by now
    assert arrivals(sim) == Counter(dict.fromkeys(names, 1))
    senders = [d.log().count("delivered rule=all target=ops") for d in pair]
    assert sum(senders) == len(names), senders
    assert replica_id(pair[0]) != replica_id(pair[1])


def test_a_replica_killed_holding_rows_leaves_them_to_the_other_after_the_lease(
    sim: Simulator, pg_url: str, replicas: Replicas
) -> None:
    # A call to DingTalk takes at most 2.5 s (timeout), the lease is 10 s.
    cfg = config(sim, pg_url, timeout="2.5s")
    pair = [replicas(cfg), replicas(cfg)]
    inject(sim, {"delay": 2})  # the first call is slow: its row stays claimed meanwhile
    assert pair[0].post("/am", am_alert_payload("Held")).status_code == 200
    wait_until(lambda: not faults_left(sim), timeout=10)  # in flight at the simulator
    [(event, holder)] = claims(pg_url)
    assert "Held" in event and holder is not None
    ids = [replica_id(d) for d in pair]
    victim, survivor = (pair[0], pair[1]) if holder == ids[0] else (pair[1], pair[0])
    victim.proc.kill()
    assert victim.proc.wait(5) == -signal.SIGKILL
    killed_at = time.monotonic()

    # The survivor goes on with new alerts, and leaves the dead replica's row alone while its
    # lease runs (a few seconds, if this machine is not too slow to see it).
    assert survivor.post("/am", am_alert_payload("After")).status_code == 200
    wait_until(lambda: arrivals(sim)["After"] == 1, timeout=10)
    if time.monotonic() - killed_at < 5:
        assert [h for _, h in claims(pg_url)] == [holder]
        ready = requests.get(f"{survivor.url}/-/ready", timeout=30).json()
        assert ready["queues"]["ops"]["claimed"] == 1 and ready["store"]["wakeups"] == "listening"
        assert metric_value(scrape_metrics(survivor), "outbox_claimed", target="ops") == 1

    # Once the lease ends, the survivor sends it: the copy in flight when the replica died
    # landed too, so it arrives twice at most, never zero times.
    wait_until(lambda: not claims(pg_url), timeout=40, interval=0.2)
    wait_until(lambda: arrivals(sim)["Held"] >= 1, timeout=10)
    time.sleep(2.5)  # the slow first call lands 2 s after it was made, whatever became of it
    assert arrivals(sim) == Counter({"Held": 2, "After": 1}), arrivals(sim)
    assert "delivered rule=all target=ops" in survivor.log()


def test_replicas_lose_nothing_acknowledged_across_a_database_restart(
    sim: Simulator, pg_url: str, pg_cluster: Cluster, replicas: Replicas
) -> None:
    cfg = config(sim, pg_url)
    pair = [replicas(cfg), replicas(cfg)]
    acknowledged: list[str] = []
    refused = 0

    def post(index: int) -> None:
        nonlocal refused
        name = f"Restart{index:03d}"
        try:
            answer = pair[index % 2].post("/am", am_alert_payload(name), timeout=30)
        except requests.RequestException:
            refused += 1  # no answer is no acknowledgement
            return
        if answer.status_code == 200:
            acknowledged.append(name)
        else:  # the database is away: 503, so Alertmanager retries (never a 500)
            assert answer.status_code == 503, answer.text
            refused += 1

    for index in range(20):
        post(index)
    pg_cluster.stop()
    try:
        for index in range(20, 30):
            post(index)
    finally:
        pg_cluster.start()
    index = 30
    deadline = time.monotonic() + 60
    while len(acknowledged) < 40 and time.monotonic() < deadline:  # Alertmanager would retry
        post(index)
        index += 1
        time.sleep(0.05)
    assert refused >= 10 and len(acknowledged) >= 40, (refused, len(acknowledged))

    wait_until(lambda: set(arrivals(sim)) >= set(acknowledged), timeout=60, interval=0.2)
    got = arrivals(sim)
    assert all(got[name] <= 2 for name in acknowledged), got  # at least once, at most twice
    for daemon in pair:
        assert daemon.proc.poll() is None, daemon.log()


def _long_idle_poll(directory: Path) -> dict[str, str]:
    """The environment of a daemon whose senders look for rows once a minute when idle (a
    sitecustomize module patches the poll before the daemon starts): only a wake-up makes them
    look sooner."""
    directory.mkdir()
    (directory / "sitecustomize.py").write_text(
        "import bridge.delivery.sender as sender\nsender.IDLE_POLL = 60.0\n", "utf-8"
    )
    return {"PYTHONPATH": str(directory)}


def test_a_row_queued_on_one_replica_wakes_the_idle_sender_of_another(
    sim: Simulator, pg_url: str, replicas: Replicas, tmp_path: Path
) -> None:
    env = _long_idle_poll(tmp_path / "patch")
    cfg = config(sim, pg_url, timeout="30s")
    cfg["state"]["lease"] = "60s"
    first = replicas(cfg, env)
    second = replicas(cfg, env)
    wait_until(lambda: "listening" in requests.get(f"{second.url}/-/ready", timeout=30).text)
    # The first alert's call hangs for 20 s: whichever replica sends it is busy meanwhile.
    inject(sim, {"delay": 20})
    assert first.post("/am", am_alert_payload("Busy")).status_code == 200
    wait_until(lambda: not faults_left(sim), timeout=10)
    [(_, busy)] = claims(pg_url)
    idle = second if busy == replica_id(first) else first

    # Posted to the busy replica: only the other one's sender, asleep for a minute, is free.
    posted = time.monotonic()
    busy_one = first if idle is second else second
    assert busy_one.post("/am", am_alert_payload("Woken")).status_code == 200
    wait_until(lambda: arrivals(sim)["Woken"] == 1, timeout=10)
    assert time.monotonic() - posted < 20  # within the slow call, far within the idle poll
    assert "Busy" not in arrivals(sim)  # the other sender was still busy with it
    # Logged once DingTalk answered and the outcome committed: just after the arrival.
    wait_until(lambda: "delivered rule=all target=ops" in idle.log(), timeout=10)
