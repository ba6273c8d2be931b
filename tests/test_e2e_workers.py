"""`server.workers: 2`: one `dingtalk-bridge run` becomes a supervisor and two workers sharing
its listening socket and the state (app/workers.py), on SQLite and on PostgreSQL.

Through the one port: both workers take requests, every alert reaches the chat exactly once,
/metrics (whichever worker answers) counts both workers' events, SIGHUP (and POST /-/reload,
whichever worker takes it) reloads both, a killed worker is started again, and SIGTERM stops
every process (no orphan) with an exit code that says a worker died. A file input is read by
worker 0 only: each line once. The console shows the bodies every worker took and the log lines
every worker wrote, and previews a silence against every worker's alerts, whichever serves it.
With `server.background_worker` the HTTP worker only serves, and the background worker sends,
reads the files and takes reloads; stopped, it sends nothing, and restarted it sends what was
accepted meanwhile.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.harness import (
    Daemon,
    Process,
    Simulator,
    am_alert_payload,
    free_port,
    metric_value,
    quick_robot_config,
    scrape_metrics,
    wait_until,
)
from tests.test_systemd_notify import NotifySocket

ALERTS = 60


@pytest.fixture
def sim() -> Iterator[Simulator]:
    sim = Simulator(spec={"robots": {"tok-a": {"rate_per_minute": 0}}})
    yield sim
    sim.stop()


def workers_config(sim: Simulator, **state: Any) -> dict[str, Any]:
    cfg = quick_robot_config(sim, **state)
    cfg["server"] = {"workers": 2}
    cfg["targets"]["ops"]["digest"] = {"enabled": False}  # each alert its own message
    return cfg


def with_file_input(cfg: dict[str, Any], log_file: Path) -> dict[str, Any]:
    """`cfg` with the file input `app` on `log_file` (made empty), titled by the line's name."""
    log_file.write_text("", "utf-8")
    cfg["inputs"]["app"] = {
        "type": "file",
        "paths": [str(log_file)],
        "read_from": "beginning",
        "poll_interval": "100ms",
        "patterns": [{"regex": r"ERROR (?P<alertname>\S+)"}],
    }
    cfg["rules"][0]["title"] = "{{ labels.alertname }}"
    return cfg


def retitle(daemon: Daemon, title: str) -> None:
    """Rewrite the daemon's config file with the first rule titled `title` (whole, never
    half-written: a watcher may read it at any moment)."""
    cfg = yaml.safe_load(daemon.config_path.read_text("utf-8"))
    cfg["rules"][0]["title"] = title
    written = daemon.config_path.with_suffix(".new")
    written.write_text(yaml.safe_dump(cfg), "utf-8")
    written.replace(daemon.config_path)


def group(daemon: Daemon) -> dict[str, Any]:
    """/-/ready's `workers`, by index (whichever worker answered)."""
    workers: dict[str, Any] = requests.get(f"{daemon.url}/-/ready", timeout=5).json()["workers"]
    return workers


def all_reporting(daemon: Daemon) -> dict[str, Any] | None:
    """`workers` once both workers are ready and report (else None, to wait on)."""
    workers = group(daemon)
    ok = len(workers) == 2 and all(w["ready"] and "pid" in w for w in workers.values())
    return workers if ok else None


def alive(pid: int) -> bool:
    """Runs (a zombie no one reaped yet has stopped: it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def arrivals(sim: Simulator) -> Counter[str]:
    return Counter(m["title"].split()[-1] for m in sim.messages(token="tok-a"))


def post_alerts(daemon: Daemon, names: list[str]) -> None:
    """Each on a new connection, four at once: the kernel hands them to both workers."""

    def post(name: str) -> int:
        answer = requests.post(f"{daemon.url}/am", json=am_alert_payload(name), timeout=20)
        return answer.status_code

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(post, names)) == {200}


def exercise(sim: Simulator, daemon: Daemon) -> None:
    workers = wait_until(lambda: all_reporting(daemon), timeout=20)
    pids = {index: w["pid"] for index, w in workers.items()}
    assert len(set(pids.values())) == 2 and daemon.proc.pid not in pids.values()
    assert len({w["replica"] for w in workers.values()}) == 2  # distinct claimers

    names = [f"W{i}" for i in range(ALERTS)]
    post_alerts(daemon, names)
    wait_until(lambda: len(arrivals(sim)) == ALERTS, timeout=60)
    # Both workers took requests, and the group's counts add up to every request.
    took = wait_until(
        lambda: (
            (w := all_reporting(daemon))
            and sum(x["events_received"] for x in w.values()) == ALERTS
            and w
        ),
        timeout=10,
    )
    assert all(w["events_received"] > 0 for w in took.values()), took

    # Whichever worker answers the scrape counts both (a sibling's share is up to a second old).
    def total(name: str, **labels: str) -> bool:
        return all(metric_value(scrape_metrics(daemon), name, **labels) == ALERTS for _ in range(4))

    wait_until(lambda: total("events_received_total", input="am"), timeout=10)
    wait_until(lambda: total("messages_sent_total", target="ops"), timeout=10)

    # A changed config reaches both (each watches the file); SIGHUP to the supervisor reaches
    # each worker: each logs a reload it was asked for by SIGHUP.
    retitle(daemon, "reloaded {{ labels.alertname }}")
    before = {w["config"] for w in workers.values()}
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: daemon.log().count("trigger=SIGHUP") == 2, timeout=20)
    wait_until(
        lambda: (
            (w := all_reporting(daemon))
            and len(hashes := {x["config"] for x in w.values()}) == 1
            and not hashes & before
        ),
        timeout=20,
    )

    # POST /-/reload reaches one worker, which has the supervisor pass a SIGHUP to all.
    assert requests.post(f"{daemon.url}/-/reload", timeout=10).status_code == 200
    wait_until(lambda: daemon.log().count("trigger=SIGHUP") == 4, timeout=20)

    # A worker killed is started again (another pid), and the group serves through it.
    os.kill(pids["1"], signal.SIGKILL)
    restarted = wait_until(
        lambda: (w := all_reporting(daemon)) and w["1"]["pid"] != pids["1"] and w, timeout=30
    )
    assert "worker died, restarting" in daemon.log()
    post_alerts(daemon, ["after-restart"])
    wait_until(lambda: arrivals(sim)["after-restart"] == 1, timeout=30)
    counts = arrivals(sim)
    assert set(counts.values()) == {1}, counts  # every alert exactly once

    # SIGTERM stops every process; a worker died on the way, and the exit code says so.
    everyone = [daemon.proc.pid, *(w["pid"] for w in restarted.values())]
    assert daemon.stop(timeout=60) == 1
    assert not [pid for pid in everyone if alive(pid)]
    assert "workers stopped" in daemon.log()


def test_two_workers_on_sqlite(sim: Simulator) -> None:
    daemon = Daemon(workers_config(sim))
    try:
        exercise(sim, daemon)
    finally:
        daemon.stop()


def test_the_console_shows_what_every_worker_took_and_logged(sim: Simulator) -> None:
    """Whichever worker serves the console's page, the playground offers the newest bodies of
    the group, a message's page shows its log lines from every worker (one may queue it, the
    other send it), and the silence preview knows every firing alert: app/siblings.py."""
    cfg = workers_config(sim)
    cfg["server"]["console"] = {"token": "workers-console-token"}
    bearer = {"Authorization": "Bearer workers-console-token"}
    daemon = Daemon(cfg, args=["--log-level", "debug"])  # the `queued` lines are debug
    try:
        wait_until(lambda: all_reporting(daemon), timeout=20)
        post_alerts(daemon, [f"E{i}" for i in range(40)])  # four at once: both workers take some
        took = wait_until(
            lambda: (
                (w := all_reporting(daemon))
                and sum(x["events_received"] for x in w.values()) == 40
                and w
            ),
            timeout=10,
        )
        assert all(w["events_received"] > 0 for w in took.values()), took
        last = [f"L{i}" for i in range(5)]
        for name in last:  # one after another, each on a new connection: in this order
            assert requests.post(f"{daemon.url}/am", json=am_alert_payload(name), timeout=20).ok

        def offered() -> list[str]:
            listed = requests.get(
                f"{daemon.url}/console/api/playground/samples?input=am", headers=bearer, timeout=10
            ).json()["samples"]
            return [
                json.loads(s["text"])["alerts"][0]["labels"]["alertname"]
                for s in listed
                if s["label"].startswith("#")
            ]

        # The same newest five on every page, a sibling's within a second or so.
        wait_until(lambda: all(offered() == last[::-1] for _ in range(6)), timeout=10)

        wait_until(lambda: len(arrivals(sim)) == 45, timeout=60)
        ids = re.findall(r"delivered rule=\S+ target=ops id=(\S+)", daemon.log())[:8]
        assert len(ids) == 8

        def whole(id_: str) -> bool:
            page = requests.get(f"{daemon.url}/console/messages/{id_}", headers=bearer, timeout=10)
            return all(
                re.search(rf"{word} rule=\S+ target=ops id={id_}", page.text)
                for word in ("queued", "delivered")
            )

        # Its queueing and its sending, on every page (each fetch may meet either worker).
        wait_until(lambda: all(whole(id_) for id_ in ids for _ in range(3)), timeout=10)

        def previewed() -> tuple[int, int, int]:
            answer = requests.post(
                f"{daemon.url}/console/api/silences/preview",
                json={"matchers": 'alertname=~"[EL][0-9]+"'},
                headers=bearer,
                timeout=10,
            ).json()
            return answer["count"], answer["firing"], answer["known"]

        # The silence preview matches every alert firing, whichever worker received it, and
        # knows them all.
        wait_until(lambda: all(previewed() == (45, 45, 45) for _ in range(6)), timeout=10)
    finally:
        daemon.stop()


def test_two_workers_on_postgresql(sim: Simulator, pg_url: str) -> None:
    daemon = Daemon(workers_config(sim, state={"url": pg_url}))
    try:
        exercise(sim, daemon)
    finally:
        daemon.stop()


def test_a_file_input_is_read_once_and_a_clean_stop_exits_0(sim: Simulator, tmp_path: Path) -> None:
    log_file = tmp_path / "app.log"
    daemon = Daemon(with_file_input(workers_config(sim), log_file))
    try:
        workers = wait_until(lambda: all_reporting(daemon), timeout=20)
        with log_file.open("a", encoding="utf-8") as out:
            out.writelines(f"ERROR line{i}\n" for i in range(30))
        wait_until(lambda: len(arrivals(sim)) == 30, timeout=30)
        # Worker 0's state, whoever answers: from worker 1 it is a snapshot up to a second old
        # (SNAPSHOT_EVERY), which may still say "starting".
        wait_until(
            lambda: (
                requests.get(f"{daemon.url}/-/ready", timeout=5).json()["files"]["app"]["state"]
                == "running"
            ),
            timeout=5,
        )
        # Worker 0 took every line, worker 1 none (counters only grow: a line worker 1 read
        # would keep this from ever holding; a sibling's share is up to a second old).
        wait_until(
            lambda: (
                {i: w["events_received"] for i, w in group(daemon).items()} == {"0": 30, "1": 0}
            ),
            timeout=10,
        )
        counts = arrivals(sim)
        assert set(counts.values()) == {1} and len(counts) == 30, counts
        pids = [daemon.proc.pid, *(w["pid"] for w in workers.values())]
        assert daemon.stop(timeout=60) == 0
        assert not [pid for pid in pids if alive(pid)]
    finally:
        daemon.stop()


def test_systemd_hears_the_supervisor_once_every_worker_serves(
    sim: Simulator, tmp_path: Path
) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"}
    daemon = Daemon(workers_config(sim), env=env, directory=tmp_path)
    try:
        wait_until(lambda: notify.states() == ["READY=1"], timeout=20)
        assert all_reporting(daemon) is not None  # READY=1 came once both served
        wait_until(lambda: notify.messages.count("WATCHDOG=1") >= 3, timeout=10)
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: len(notify.states()) == 3)
        assert daemon.stop(timeout=60) == 0
        # The workers said nothing themselves: one READY=1 at start, one after the reload.
        assert notify.states() == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]
    finally:
        daemon.stop()
        notify.close()


def test_workers_stop_by_themselves_when_the_supervisor_is_killed(sim: Simulator) -> None:
    daemon = Daemon(workers_config(sim))
    try:
        workers = wait_until(lambda: all_reporting(daemon), timeout=20)
        daemon.proc.kill()  # SIGKILL: the supervisor passes nothing on
        daemon.proc.wait()
        pids = [w["pid"] for w in workers.values()]
        wait_until(lambda: not [pid for pid in pids if alive(pid)], timeout=30)
        assert daemon.log().count("the supervisor is gone: stopping this worker") == 2
    finally:
        daemon.stop()


def test_sigterm_while_the_workers_start_is_a_clean_stop(sim: Simulator, tmp_path: Path) -> None:
    """SIGTERM as soon as the second worker is started: that worker may not have its signal
    handler yet, so SIGTERM ends it at once. It ended as asked, so the supervisor exits 0
    (systemd would otherwise count a stop during a start as a failure), and nothing is left
    running."""
    cfg = workers_config(sim)
    cfg["state_dir"] = str(tmp_path / "state")
    cfg["server"]["listen"] = f"127.0.0.1:{free_port()}"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg), "utf-8")
    supervisor = Process(["run", "-c", str(path)])
    try:
        started = wait_until(
            lambda: re.search(r"worker started worker=1 pid=(\d+)", supervisor.log()),
            timeout=60,
            interval=0.01,
        )
        supervisor.signal(signal.SIGTERM)
        assert supervisor.proc.wait(60) == 0, supervisor.log()
        stopped = [line for line in supervisor.log().splitlines() if "workers stopped" in line]
        assert len(stopped) == 1 and "failed=" not in stopped[0], stopped
        assert not alive(int(started.group(1)))
    finally:
        supervisor.stop()


def test_a_background_worker_sends_reads_files_and_loses_nothing_when_it_dies(
    sim: Simulator, tmp_path: Path
) -> None:
    log_file = tmp_path / "app.log"
    cfg = with_file_input(workers_config(sim), log_file)
    cfg["server"] = {"workers": 1, "background_worker": True}
    daemon = Daemon(cfg)
    try:
        workers = wait_until(lambda: all_reporting(daemon), timeout=30)
        assert {i: w["part"] for i, w in workers.items()} == {"0": "http", "1": "background"}
        post_alerts(daemon, [f"B{i}" for i in range(20)])
        with log_file.open("a", encoding="utf-8") as out:
            out.writelines(f"ERROR F{i}\n" for i in range(5))
        wait_until(lambda: len(arrivals(sim)) == 25, timeout=30)
        # The HTTP worker took the requests, the background worker the file's lines.
        wait_until(
            lambda: (
                {i: w["events_received"] for i, w in group(daemon).items()} == {"0": 20, "1": 5}
            ),
            timeout=10,
        )
        ready = requests.get(f"{daemon.url}/-/ready", timeout=5).json()
        # Answered by the HTTP worker, with the background worker's sender and file input.
        assert ready["queues"]["ops"]["sender_running"] is True
        assert ready["store"]["wakeups"] == "fifo"  # it hears the HTTP worker through the FIFO
        assert ready["files"]["app"]["state"] == "running"
        wait_until(
            lambda: metric_value(scrape_metrics(daemon), "messages_sent_total", target="ops") == 25,
            timeout=10,
        )

        # Frozen, the background worker sends nothing: the HTTP worker accepts, and has no
        # sender of its own (three idle polls long, nothing arrives).
        background = workers["1"]["pid"]
        os.kill(background, signal.SIGSTOP)
        post_alerts(daemon, ["while-stopped-1", "while-stopped-2"])
        time.sleep(3)
        assert len(arrivals(sim)) == 25
        # Killed, it is started again, and sends what was accepted meanwhile.
        os.kill(background, signal.SIGKILL)
        wait_until(lambda: len(arrivals(sim)) == 27, timeout=30)
        assert "worker died, restarting" in daemon.log()
        restarted = wait_until(
            lambda: (w := all_reporting(daemon)) and w["1"]["pid"] != background and w, timeout=30
        )
        assert restarted["1"]["part"] == "background"

        # A reload reaches the background worker too: its messages take the new title.
        retitle(daemon, "reloaded {{ labels.alertname }}")
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: daemon.log().count("trigger=SIGHUP") == 2, timeout=20)
        post_alerts(daemon, ["after-reload"])
        wait_until(
            lambda: any(m["title"] == "reloaded after-reload" for m in sim.messages(token="tok-a")),
            timeout=30,
        )
        counts = arrivals(sim)
        assert set(counts.values()) == {1} and len(counts) == 28, counts  # each exactly once

        everyone = [daemon.proc.pid, *(w["pid"] for w in restarted.values())]
        assert daemon.stop(timeout=60) == 1  # a worker died on the way: the exit code says so
        assert not [pid for pid in everyone if alive(pid)]
    finally:
        daemon.stop()
