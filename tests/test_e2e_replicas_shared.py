"""Several replicas sharing one PostgreSQL: one robot window, one flush per group, one set of
silences. Real daemons and the simulator, which enforces DingTalk's 20 calls a minute per robot
and its 10-minute lockout (130101) as DingTalk does; on the session's throwaway cluster
(tests/pgcluster.py), skipped without PostgreSQL. That each message is sent once (claims) is
tests/test_e2e_replicas.py's subject."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.harness import (
    Daemon,
    Simulator,
    am_alert_payload,
    bridge_cli,
    quick_robot_config,
    wait_until,
)

TOKEN = "tok-shared"  # one robot, DingTalk's limits
ALERTS = 1000
STORM_NAME = re.compile(r"Storm\d{4}")


@pytest.fixture
def limited() -> Iterator[Simulator]:
    sim = Simulator(spec={"robots": {TOKEN: {}}}, extra=["--quiet"])
    yield sim
    sim.stop()


def start(count: int, config: dict[str, Any]) -> list[Daemon]:
    replicas: list[Daemon] = []
    try:
        for _ in range(count):
            replicas.append(Daemon(config))
    except BaseException:
        for replica in replicas:
            replica.stop()
        raise
    return replicas


@pytest.fixture
def storm_replicas(limited: Simulator, pg_url: str) -> Iterator[list[Daemon]]:
    """Three replicas, two rules with a target each, both targets posting to one robot. Digests
    as large as a robot message holds, so the second minute carries what the first left."""
    robot = {
        "type": "robot",
        "webhook": limited.robot_url(TOKEN),
        "digest": {"max_alerts": 500},
    }
    replicas = start(
        3,
        {
            "state": {"url": pg_url},
            "targets": {"ops": robot, "dba": robot},
            "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
            "rules": [
                {"name": "db", "match": {"team": "db"}, "targets": ["dba"]},
                {"name": "rest", "targets": ["ops"]},
            ],
        },
    )
    yield replicas
    for replica in replicas:
        replica.stop()


def most_in_any_minute(times: list[float]) -> int:
    """The most calls in any 60 seconds (DingTalk's sliding minute)."""
    times = sorted(times)
    return max((sum(1 for u in times[i:] if u < t + 60.0) for i, t in enumerate(times)), default=0)


def post_storm(replicas: list[Daemon]) -> int:
    """ALERTS distinct alerts, to the replicas in turn (one poster per replica); how many were
    accepted (200: committed)."""
    accepted = [0] * len(replicas)

    def poster(n: int) -> None:
        session = requests.Session()
        for i in range(n, ALERTS, len(replicas)):
            team = "db" if i % 2 else "web"
            body = am_alert_payload(f"Storm{i:04d}", team=team)
            answer = session.post(f"{replicas[n].url}/am", json=body, timeout=30)
            accepted[n] += answer.status_code == 200

    threads = [threading.Thread(target=poster, args=(n,)) for n in range(len(replicas))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return sum(accepted)


# A minute or two of three daemons' work: in a group of its own, so that under `--dist
# loadgroup` one worker takes it while the others run the rest.
@pytest.mark.xdist_group("replica-storm")
def test_three_replicas_keep_one_robot_to_20_calls_a_minute_through_a_storm(
    storm_replicas: list[Daemon], limited: Simulator
) -> None:
    assert post_storm(storm_replicas) == ALERTS

    def arrived() -> set[str]:
        texts = (m.get("text", "") + m.get("title", "") for m in limited.messages())
        return {name for text in texts for name in STORM_NAME.findall(text)}

    # Digests carry the storm: 20 calls in the first minute, the rest in the next one.
    wait_until(lambda: len(arrived()) == ALERTS, timeout=240, interval=2.0)

    calls = [r for r in limited.requests_seen() if r["token"] == TOKEN]
    assert [r for r in calls if r["errcode"] == 130101] == []
    assert most_in_any_minute([r["time"] for r in calls]) <= 20
    assert len(calls) > 20  # the second minute was used too: the window was not over-cautious


def test_a_silence_added_on_one_replica_stops_an_alert_posted_to_another(
    sim: Simulator, pg_url: str
) -> None:
    config = quick_robot_config(sim, state={"url": pg_url})
    a, b = start(2, config)
    try:
        assert b.post("/am", am_alert_payload("Before")).status_code == 200  # B read silences
        added = bridge_cli(
            "silence", "add", "-c", str(a.config_path), "--match", "alertname=Quiet", "--for", "1h"
        )
        assert added.returncode == 0, added.stderr
        time.sleep(1.2)  # a replica looks at the silences' version once a second
        swallowed = b.post("/am", am_alert_payload("Quiet"))
        assert (swallowed.json()["silenced"], swallowed.json()["messages"]) == (1, 0)

        silence_id = added.stdout.split()[1]
        expired = bridge_cli("silence", "expire", "-c", str(a.config_path), silence_id)
        assert expired.returncode == 0, expired.stderr
        time.sleep(1.2)
        told = b.post("/am", am_alert_payload("Quiet", instance="after"))
        assert (told.json()["silenced"], told.json()["messages"]) == (0, 1)
        sim.wait_messages(2)
        titles = {m["title"] for m in sim.messages()}
        assert any("Before" in t for t in titles) and any("Quiet" in t for t in titles)
    finally:
        a.stop()
        b.stop()


def test_a_group_fed_through_two_replicas_is_flushed_once(sim: Simulator, pg_url: str) -> None:
    config = quick_robot_config(sim, state={"url": pg_url})
    config["rules"] = [
        {
            "name": "grouped",
            "targets": ["ops"],
            "group_by": ["cluster"],
            "group_wait": "2s",
            "group_interval": "1h",
        }
    ]
    a, b = start(2, config)
    try:
        assert a.post("/am", am_alert_payload("FromA", cluster="east")).status_code == 200
        assert b.post("/am", am_alert_payload("FromB", cluster="east")).status_code == 200
        [message] = sim.wait_messages(1, timeout=15)
        assert "FromA" in message["text"] and "FromB" in message["text"]
        time.sleep(3.0)  # both groupers had their look (each once a second) at the due group
        flushes = a.log().count("group flushed") + b.log().count("group flushed")
        assert flushes == 1, a.log() + b.log()
        assert len(sim.messages()) == 1  # and sent once
    finally:
        a.stop()
        b.stop()
