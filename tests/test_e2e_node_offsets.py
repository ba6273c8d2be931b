"""Two replicas sharing one PostgreSQL state, each tailing its own log file under the same input
name (file inputs stay per host): each sends only its own lines, never the lines that were in its
file before it first ran (read_from: end is a first run of *its* own), and after a restart each
resumes its own offset. Each replica's node id is its own (`state: {node_id}`, the second one
from an environment variable reference); the rows in the database say whose is whose."""

from __future__ import annotations

import os
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import requests

from tests.harness import Daemon, Simulator, quick_robot_config, wait_until

NODES = ("web-1", "web-2")


def replica_config(sim: Simulator, pg_url: str, node: str, logs: Path) -> dict[str, Any]:
    """A replica's config: the same input name ("app") and pattern on every replica, its own
    log directory (its host's /var/log), and its node id (web-2's through ${BRIDGE_NODE})."""
    cfg = quick_robot_config(
        sim, state={"url": pg_url, "node_id": node if node == NODES[0] else "${BRIDGE_NODE}"}
    )
    cfg["inputs"]["app"] = {
        "type": "file",
        "paths": [str(logs / "app.log")],
        "read_from": "end",
        "poll_interval": "100ms",
        "patterns": [{"regex": r"ERROR (?P<what>\S+)"}],
    }
    # Each replica its own target name: until replicas claim outbox rows (issue 13, another
    # part), both senders would send every pending row of a shared target, and this test counts
    # what the *tailers* hand on.
    cfg["targets"] = {f"ops-{node}": cfg["targets"]["ops"]}
    cfg["rules"] = [{"name": "all", "targets": [f"ops-{node}"], "title": "{{ labels.what }}"}]
    return cfg


def ready(daemon: Daemon) -> dict[str, Any]:
    answer: dict[str, Any] = requests.get(f"{daemon.url}/-/ready", timeout=10).json()
    return answer


def following(daemon: Daemon) -> bool:
    """The replica's file input has opened its app.log (lines written from now on are read)."""
    return bool(ready(daemon)["files"]["app"]["files"])


def logged(daemon: Daemon, text: str) -> bool:
    return text in daemon.log()


def titles(sim: Simulator) -> Counter[str]:
    return Counter(m.get("title", "") for m in sim.messages())


def append(path: Path, *words: str) -> None:
    with path.open("a") as out:
        out.write("".join(f"ERROR {word}\n" for word in words))


def start(sim: Simulator, pg_url: str, node: str, home: Path) -> Daemon:
    return Daemon(
        replica_config(sim, pg_url, node, home / "logs"),
        env={**os.environ, "BRIDGE_NODE": NODES[1]},
        directory=home,
    )


def test_replicas_on_one_database_each_tail_their_own_file(
    sim: Simulator, pg_url: str, tmp_path: Path
) -> None:
    homes = {node: tmp_path / node for node in NODES}
    for node, home in homes.items():
        (home / "logs").mkdir(parents=True)
        append(home / "logs" / "app.log", f"before-{node}")  # there before the first run
    daemons = {node: start(sim, pg_url, node, home) for node, home in homes.items()}
    try:
        for node, daemon in daemons.items():
            assert ready(daemon)["node"] == node
            wait_until(partial(logged, daemon, f" node={node} "))  # on the "started" line
            wait_until(partial(following, daemon), timeout=15)
            append(homes[node] / "logs" / "app.log", f"first-{node}")
        wait_until(lambda: {f"first-{n}" for n in NODES} <= set(titles(sim)), timeout=30)
    finally:
        for daemon in daemons.values():
            daemon.stop()

    for node, home in homes.items():  # written while both are down
        append(home / "logs" / "app.log", f"second-{node}")
    daemons = {node: start(sim, pg_url, node, home) for node, home in homes.items()}
    try:
        wait_until(lambda: {f"second-{n}" for n in NODES} <= set(titles(sim)), timeout=30)
    finally:
        for daemon in daemons.values():
            daemon.stop()

    sent = titles(sim)
    for node in NODES:
        assert sent[f"first-{node}"] == 1 and sent[f"second-{node}"] == 1, sent
        assert sent[f"before-{node}"] == 0, sent  # its own first run: read from the end
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT node, path, \"offset\" FROM tail_files WHERE input = 'app' ORDER BY node"
        ).fetchall()
    assert rows == [
        (node, str(home / "logs" / "app.log"), (home / "logs" / "app.log").stat().st_size)
        for node, home in homes.items()
    ]
