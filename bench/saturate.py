"""Saturation benchmark (issue 13): the senders work as hard as the intake.

    python -m bench.saturate [--duration 15] [--clients 8 32]
    python -m bench.saturate --state postgresql [--replicas 3]
    python -m bench.saturate --workers 2 [--sockets reuseport]
    python -m bench.saturate --background-worker [--workers N]

A real daemon (or `--replicas` daemons sharing one PostgreSQL database, the clients spread over
them) with one robot target whose DingTalk (bench/fakedingtalk.py) accepts every message
at once and whose rate limit is off, so nothing but the bridge itself limits the pace. For each
`--clients` count, that many processes with one keep-alive connection each post distinct
Alertmanager notifications as fast as they are answered for `--duration` s (the clients of
bench/ingest.py). Reported per count: accepted requests/s (each one committed before its 200),
non-200 answers, the daemon's CPU per request, and whether every accepted alert then reached the
fake DingTalk (by its marker; a digest names many) and how long after the last request.
`--workers N` runs each daemon as N processes (`server.workers`, app/workers.py) on one port,
sharing one listening socket, or each its own on the address with `--sockets reuseport`; the
CPU counted is the whole process group's. `--background-worker` adds the process that sends
(`server.background_worker`), the workers then serving HTTP only. `--state postgresql` starts a
throwaway PostgreSQL cluster (tests/pgcluster.py: Debian's postgresql binaries) for the run; the
default is the embedded SQLite state.

The Go bridge this is compared with forwards 2,100-3,000 requests/s in this setup on this 2-core
machine (issue 13); our target there is 2,500. Writes bench/results/saturate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import requests

from bench.ingest import (
    PLACEHOLDER,
    ClientJob,
    add_client_option,
    cpu_seconds,
    notification_template,
    proc_status_kb,
    run_clients,
    start_py_spy,
)
from bridge.app.siblings import SNAPSHOT_EVERY
from bridge.store.postgres import PostgresStore
from tests.harness import ROOT, Daemon, free_port, wait_until
from tests.pgcluster import Cluster, find_binaries

RESULTS = ROOT / "bench" / "results" / "saturate.json"
TARGET_REQUESTS_PER_S = 2500.0
DELIVERY_WAIT = 300.0  # seconds allowed after the last request for every alert to arrive


class FakeDingTalk:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fakedingtalk", "--port", str(self.port)], cwd=ROOT
        )
        wait_until(self._up, timeout=15)

    def _up(self) -> bool:
        try:
            return requests.get(f"{self.url}/count", timeout=1).ok
        except requests.RequestException:
            return False

    def messages(self) -> int:
        """DingTalk calls it answered so far (a digest carries many alerts in one)."""
        return int(requests.get(f"{self.url}/count", timeout=10).json()["messages"])

    def delivered(self, phase: str) -> int:
        """Distinct alerts of `phase` that reached it."""
        counted = requests.get(f"{self.url}/count", timeout=10).json()
        return int(counted["markers"].get(phase, 0))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def daemon_config(
    fake: FakeDingTalk,
    threads: int | None,
    state_url: str | None = None,
    workers: int = 1,
    background: bool = False,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "targets": {
            "fast": {
                "type": "robot",
                "webhook": f"{fake.url}/robot/send?access_token=tok-saturate",
                "rate_limit": {"messages": 0},  # the fake DingTalk takes everything at once
                "queue_size": 1_000_000,
            }
        },
        "inputs": {"am": {"type": "alertmanager", "path": "/alertmanager"}},
        "rules": [{"name": "all", "targets": ["fast"], "msgtype": "markdown"}],
    }
    config["server"] = {
        "workers": workers,
        "background_worker": background,
        **({"threads": threads} if threads else {}),
    }
    if state_url is not None:
        config["state"] = {"url": state_url}
    return config


def one_run(
    daemons: list[Daemon],
    fake: FakeDingTalk,
    body: bytes,
    clients: int,
    duration: float,
    phase: str,
    py_spy: Path | None = None,
    lean: bool = True,
) -> dict[str, Any]:
    pids = [pid for d in daemons for pid in group_pids(d.proc.pid)]
    cpu_before = sum(cpu_seconds(pid) for pid in pids)
    taken_before = worker_events(daemons[0])
    messages_before = fake.messages()
    spy = start_py_spy(pids[0], py_spy, duration) if py_spy else None
    jobs = [  # client i talks to replica i mod N: the replicas share the load evenly
        ClientJob(
            i, daemons[i % len(daemons)].port, body, duration, 0.0, False, phase=phase, lean=lean
        )
        for i in range(clients)
    ]
    results = run_clients(jobs)
    ended = time.monotonic()
    if spy is not None:
        spy.wait(duration + 60)
    accepted = sum(r.statuses.get(200, 0) for r in results)
    non_200 = sum(n for r in results for s, n in r.statuses.items() if s != 200)
    elapsed = max(r.finished for r in results) - min(r.started for r in results)

    def all_there() -> bool:
        return fake.delivered(phase) >= accepted

    try:
        wait_until(all_there, timeout=DELIVERY_WAIT, interval=0.2)
        delivered_after = round(time.monotonic() - ended, 2)
    except AssertionError:
        delivered_after = None
    cpu_used = sum(cpu_seconds(pid) for pid in pids) - cpu_before
    return {
        "clients": clients,
        "duration_s": round(elapsed, 2),
        "accepted": accepted,
        "requests_per_s": round(accepted / elapsed, 1),
        "non_200": non_200,
        "errors": sum(r.errors for r in results),
        "delivered": fake.delivered(phase),
        "dingtalk_calls": fake.messages() - messages_before,
        "all_delivered_after_s": delivered_after,
        "daemon_cpu_ms_per_request": round(cpu_used * 1000 / accepted, 3) if accepted else None,
        # What the load generator takes of the same two cores (http.client: ~0.3 ms).
        "client_cpu_ms_per_request": (
            round(sum(r.cpu for r in results) * 1000 / accepted, 3) if accepted else None
        ),
        "worker_shares": worker_shares(daemons[0], taken_before),
    }


def group_pids(pid: int) -> list[int]:
    """A daemon's process and its workers (its children), whose CPU counts together."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [pid, *(int(c) for c in children.read_text().split())] if children.exists() else [pid]


def worker_events(daemon: Daemon) -> dict[str, int]:
    """Events each worker of `daemon` took so far (empty for a single process)."""
    workers = requests.get(f"{daemon.url}/-/ready", timeout=10).json().get("workers", {})
    return {index: int(w.get("events_received", 0)) for index, w in workers.items()}


def worker_shares(daemon: Daemon, before: dict[str, int]) -> dict[str, float] | None:
    """The share of a run's requests each worker took (how evenly the socket spreads them);
    None for a single process. Read after the snapshots (a second apart) caught up."""
    if not before:
        return None
    time.sleep(2 * SNAPSHOT_EVERY)
    taken = {i: n - before.get(i, 0) for i, n in worker_events(daemon).items()}
    total = sum(taken.values()) or 1
    return {i: round(n / total, 3) for i, n in sorted(taken.items())}


def all_serving(daemon: Daemon, workers: int) -> bool:
    """Every worker of `daemon` ready (its /-/ready lists each)."""
    try:
        ready = requests.get(f"{daemon.url}/-/ready", timeout=5).json()
    except requests.RequestException:
        return False
    return sum(1 for w in ready.get("workers", {}).values() if w.get("ready")) == workers


def start_cluster() -> Cluster:
    """A throwaway PostgreSQL cluster with the bridge's schema in its template database."""
    bindir, why = find_binaries()
    if bindir is None:
        sys.exit(f"--state postgresql: {why}")
    cluster = Cluster(bindir)
    cluster.template_ready(lambda url: PostgresStore(url).close())
    return cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.saturate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per client count")
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--threads", type=int, help="server.threads of the daemon")
    parser.add_argument("--state", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--replicas", type=int, default=1, help="daemons sharing the state (postgresql only)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="server.workers of each daemon (processes)"
    )
    parser.add_argument(
        "--background-worker",
        action="store_true",
        help="server.background_worker: the senders in a process of their own, the workers"
        " serving HTTP only",
    )
    parser.add_argument(
        "--sockets",
        choices=["shared", "reuseport"],
        default="shared",
        help="with --workers: one inherited listening socket, or SO_REUSEPORT per worker",
    )
    add_client_option(parser)
    parser.add_argument(
        "--py-spy", type=Path, metavar="FILE", help="profile the first client count's run"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results ({RESULTS})")
    args = parser.parse_args(argv)
    if args.replicas > 1 and args.state != "postgresql":
        parser.error("several replicas share a PostgreSQL state: add --state postgresql")

    cluster = start_cluster() if args.state == "postgresql" else None
    fake = FakeDingTalk()
    daemons: list[Daemon] = []
    runs: list[dict[str, Any]] = []
    try:
        url = cluster.url(cluster.new_database()) if cluster is not None else None
        for _ in range(args.replicas):
            daemons.append(
                Daemon(
                    daemon_config(fake, args.threads, url, args.workers, args.background_worker),
                    env={"DINGTALK_BRIDGE_WORKER_SOCKETS": args.sockets},
                )
            )
        processes = args.workers + int(args.background_worker)
        if processes > 1:  # each daemon serves once all its workers do
            for daemon in daemons:
                wait_until(partial(all_serving, daemon, processes), timeout=60)
        body = notification_template()
        assert PLACEHOLDER.encode() in body
        warm = [ClientJob(0, d.port, body, 1.0, 50.0, record=False, phase="W") for d in daemons]
        run_clients(warm)
        for index, clients in enumerate(args.clients):
            phase = "ABCDEFGHIJKLMNOPQRSTUV"[index]  # its own markers: counted apart
            spy = args.py_spy if index == 0 else None
            lean = args.client == "lean"
            runs.append(one_run(daemons, fake, body, clients, args.duration, phase, spy, lean))
        peak_rss_mb = max(  # per process: a worker's, not the supervisor's
            round(proc_status_kb(pid, "VmHWM") / 1024, 1)
            for d in daemons
            for pid in group_pids(d.proc.pid)
        )
    except BaseException:
        for daemon in daemons:
            print(f"--- daemon log (tail) ---\n{daemon.log()[-4000:]}", file=sys.stderr)
        raise
    finally:
        for daemon in daemons:
            daemon.stop()
        fake.stop()
        if cluster is not None:
            cluster.close()

    results = {
        "benchmark": "saturate",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(
            ["python -m bench.saturate", *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "store": args.state,
        "replicas": args.replicas,
        "workers": args.workers,
        "background_worker": args.background_worker,
        "sockets": args.sockets,
        "client": args.client,
        "runs": runs,
        "peak_rss_mb": peak_rss_mb,
        "target_requests_per_s": TARGET_REQUESTS_PER_S,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    for run in runs:
        verdict = "ok" if run["requests_per_s"] >= TARGET_REQUESTS_PER_S else "MISSED"
        delivered = (
            f"all {run['accepted']} delivered {run['all_delivered_after_s']} s after"
            if run["all_delivered_after_s"] is not None
            else f"only {run['delivered']} of {run['accepted']} delivered"
        )
        print(
            f"{run['clients']:>3} clients: {run['requests_per_s']:>7.0f} accepted/s "
            f"(target {TARGET_REQUESTS_PER_S:.0f}: {verdict}), non-200 {run['non_200']}, "
            f"{run['daemon_cpu_ms_per_request']} ms CPU/request (clients"
            f" {run['client_cpu_ms_per_request']}); {delivered}"
            f" in {run['dingtalk_calls']} DingTalk calls"
            + (f"; worker shares {run['worker_shares']}" if run["worker_shares"] else "")
        )
    where = f"{args.state}, {args.replicas} replica{'s' if args.replicas > 1 else ''}"
    where += f", {args.workers} worker(s) ({args.sockets} socket)"
    where += ", a background worker" if args.background_worker else ""
    print(f"({where}) peak RSS {peak_rss_mb} MB per process\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
