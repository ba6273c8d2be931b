"""Soak benchmark: a long run of requests against the real daemon; do memory and the WAL stay flat?

    python -m bench.soak                       # a million requests (about 10-15 minutes here)
    python -m bench.soak --requests 300000     # fewer
    python -m bench.soak --requests 100000 --tracemalloc   # where the memory goes (slower)

Starts the simulator (robots without a rate limit) and the daemon (through tests.harness), then
`--clients` processes post `--requests` Alertmanager notifications in all, back to back over
keep-alive connections. Each is a distinct alert (its own alertname, fingerprint and group key, as
in bench.ingest), so every per-alert structure sees a new key; one request in ten goes to an input
no rule takes (the "no rule matched" memory). The robot target takes everything (no rate limit on
either side), so the outbox drains as it fills.

Every `--sample` seconds the daemon's RSS (VmRSS), the WAL's size and the database's size are
sampled. The report gives start (once the first `--warmup` requests are through), end and max of
each, the growth over the second half of the run, and whether it stayed flat: RSS grew by less
than 1 MB over the second half, and the WAL stayed under its bound (bridge.store.db.WAL_MAX plus
a commit's worth). Writes bench/results/soak.json; exits 1 when not flat.

`--tracemalloc` traces the daemon's allocations from half the warm-up on (one frame: the line
that allocated), takes snapshots at the end of the warm-up and at the end, then prints the 15
largest growths by line: how the cause was found.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import shutil
import signal
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import requests

from bench.ingest import PLACEHOLDER, notification_template, proc_status_kb
from bridge.store.db import WAL_MAX
from tests.harness import ROOT, Daemon, Simulator

RESULTS = ROOT / "bench" / "results" / "soak.json"
TOKEN = "tok-soak"
FLAT_RSS_MB = 1.0  # growth allowed over the second half of the run
UNMATCHED_EVERY = 10  # one request in ten goes to the input no rule takes

# Loaded into the daemon (PYTHONPATH) with --tracemalloc. The first SIGUSR1 starts tracing (from
# the start it would slow the daemon's start past the harness's patience), each later one dumps a
# snapshot. The daemon does not use SIGUSR1; its handlers for TERM, INT and HUP come later.
_SITECUSTOMIZE = """
import os, signal, tracemalloc
_n = [0]
def _on_usr1(signum, frame):
    if not tracemalloc.is_tracing():
        tracemalloc.start(1)
        return
    _n[0] += 1
    tracemalloc.take_snapshot().dump(os.path.join(os.environ["SOAK_SNAPSHOTS"], f"{_n[0]}.snap"))
signal.signal(signal.SIGUSR1, _on_usr1)
"""


@dataclass
class Job:
    index: int
    port: int
    count: int


def client(job: Job, body: bytes, done: Synchronized[int], failures: Synchronized[int]) -> None:
    """Posts `job.count` distinct alerts over one keep-alive connection."""
    headers = {"Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", job.port, timeout=30)
    unflushed = bad = 0
    for seq in range(job.count):
        marker = f"SK{job.index}x{seq:08d}"
        path = "/other" if seq % UNMATCHED_EVERY == UNMATCHED_EVERY - 1 else "/am"
        try:
            conn.request("POST", path, body.replace(PLACEHOLDER.encode(), marker.encode()), headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                bad += 1
        except (OSError, http.client.HTTPException):
            bad += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", job.port, timeout=30)
        unflushed += 1
        if unflushed == 200 or seq == job.count - 1:
            with done.get_lock():
                done.value += unflushed
            with failures.get_lock():
                failures.value += bad
            unflushed = bad = 0
    conn.close()


def daemon_config(simulator: Simulator) -> dict[str, Any]:
    return {
        "targets": {
            "ops": {
                "type": "robot",
                "webhook": simulator.robot_url(TOKEN),
                "rate_limit": {"messages": 0},
                "queue_size": 1_000_000,
            }
        },
        "inputs": {
            "am": {"type": "alertmanager", "path": "/am"},
            "other": {"type": "alertmanager", "path": "/other"},
        },
        "rules": [{"name": "all", "inputs": ["am"], "targets": ["ops"]}],
    }


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def sample(daemon: Daemon, state: Path, started: float, done: int) -> dict[str, float]:
    return {
        "t": round(time.monotonic() - started, 1),
        "requests": done,
        "rss_mb": round(proc_status_kb(daemon.proc.pid, "VmRSS") / 1024, 2),
        "wal_mb": round(file_size(state / "state.db-wal") / 2**20, 2),
        "db_mb": round(file_size(state / "state.db") / 2**20, 2),
    }


def summary(samples: list[dict[str, float]], key: str, warmup: int) -> dict[str, float]:
    after = [s for s in samples if s["requests"] >= warmup] or samples
    values = [s[key] for s in after]
    return {"start": values[0], "end": values[-1], "max": max(values)}


def second_half_growth(samples: list[dict[str, float]], key: str, total: int) -> float:
    """Max over the last quarter minus max over the second quarter (of requests)."""
    second = [s[key] for s in samples if total / 4 <= s["requests"] < total / 2]
    last = [s[key] for s in samples if s["requests"] >= total * 3 / 4]
    if not second or not last:
        return 0.0
    return round(max(last) - max(second), 2)


def snapshot_diff(directory: Path) -> list[str]:
    first = tracemalloc.Snapshot.load(str(directory / "1.snap"))
    last = tracemalloc.Snapshot.load(str(directory / "2.snap"))
    noise = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = last.filter_traces(noise).compare_to(first.filter_traces(noise), "lineno")
    return [str(stat) for stat in stats[:15]]


def wait_for_snapshot(directory: Path, name: str) -> None:
    deadline = time.monotonic() + 120
    while not (directory / name).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # written in one go, but give it a moment to finish


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--sample", type=float, default=2.0, help="seconds between samples")
    parser.add_argument("--warmup", type=int, default=20_000, help="requests before 'start'")
    parser.add_argument("--tracemalloc", action="store_true", help="where memory grows")
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        return run(args, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run(args: argparse.Namespace, directory: Path) -> int:
    env: dict[str, str] = {}
    snapshots = directory / "snapshots"
    if args.tracemalloc:
        hooks = directory / "hooks"
        hooks.mkdir()
        snapshots.mkdir()
        (hooks / "sitecustomize.py").write_text(_SITECUSTOMIZE)
        env = {"PYTHONPATH": f"{hooks}:{ROOT}", "SOAK_SNAPSHOTS": str(snapshots)}
    simulator = Simulator(spec={"robots": {TOKEN: {"rate_per_minute": 0}}}, extra=["--quiet"])
    try:
        daemon = Daemon(daemon_config(simulator), env=env, directory=directory)
    except BaseException:
        simulator.stop()
        raise
    state = directory / "state"
    body = notification_template()
    ctx = mp.get_context("fork")
    done = ctx.Value("q", 0)
    failures = ctx.Value("q", 0)
    share = [args.requests // args.clients] * args.clients
    share[0] += args.requests - sum(share)
    procs = [
        ctx.Process(target=client, args=(Job(i, daemon.port, n), body, done, failures))
        for i, n in enumerate(share)
    ]
    samples: list[dict[str, float]] = []
    traced = snapped = False
    try:
        time.sleep(1.0)
        started = time.monotonic()
        samples.append(sample(daemon, state, started, 0))
        for p in procs:
            p.start()
        while any(p.is_alive() for p in procs):
            time.sleep(args.sample)
            samples.append(sample(daemon, state, started, done.value))
            if args.tracemalloc and not traced and done.value >= args.warmup // 2:
                daemon.signal(signal.SIGUSR1)  # start tracing
                traced = True
            elif args.tracemalloc and not snapped and done.value >= args.warmup:
                daemon.signal(signal.SIGUSR1)  # the first snapshot
                snapped = True
            line = samples[-1]
            print(
                f"{line['t']:7.0f} s {line['requests']:>9,} requests  RSS {line['rss_mb']:6.1f} MB"
                f"  WAL {line['wal_mb']:5.1f} MB  db {line['db_mb']:5.1f} MB",
                flush=True,
            )
        elapsed = time.monotonic() - started
        for p in procs:
            p.join(5)
        time.sleep(5.0)  # quiet: the sender drains, the WAL is truncated
        idle = sample(daemon, state, started, done.value)
        samples.append(idle)
        depth = sum(
            q["pending"]
            for q in requests.get(f"{daemon.url}/-/ready", timeout=10).json()["queues"].values()
        )
        diff: list[str] = []
        if args.tracemalloc:
            wait_for_snapshot(snapshots, "1.snap")
            daemon.signal(signal.SIGUSR1)
            wait_for_snapshot(snapshots, "2.snap")
            diff = snapshot_diff(snapshots)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        daemon.stop()
        simulator.stop()
    rss = summary(samples, "rss_mb", args.warmup)
    wal = summary(samples, "wal_mb", args.warmup)
    rss_growth = second_half_growth(samples, "rss_mb", args.requests)
    wal_bound_mb = WAL_MAX / 2**20 + 1
    flat = rss_growth < FLAT_RSS_MB and wal["max"] <= wal_bound_mb
    figures = {
        "requests": args.requests,
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "requests_per_s": round(args.requests / elapsed),
        "non_200_or_errors": failures.value,
        "rss_mb": rss,
        "rss_growth_second_half_mb": rss_growth,
        "wal_mb": wal,
        "wal_when_idle_mb": idle["wal_mb"],
        "db_mb": summary(samples, "db_mb", args.warmup),
        "queued_at_end": depth,
        "flat": flat,
        "tracemalloc_top_growth": diff,
        "samples": samples,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(
        f"\n{args.requests:,} requests in {elapsed:.0f} s ({figures['requests_per_s']:,}/s), "
        f"{failures.value} non-200 or errors, {depth} still queued"
    )
    print(
        f"RSS  start {rss['start']:.1f} MB, end {rss['end']:.1f} MB, max {rss['max']:.1f} MB; "
        f"second half grew {rss_growth:+.2f} MB (flat below {FLAT_RSS_MB} MB)"
    )
    print(
        f"WAL  start {wal['start']:.1f} MB, end {wal['end']:.1f} MB, max {wal['max']:.1f} MB "
        f"(bound {wal_bound_mb:.0f} MB); {idle['wal_mb']:.1f} MB once idle"
    )
    for growth in diff:
        print(f"  {growth}")
    print("flat" if flat else "NOT flat", f"(written to {RESULTS.relative_to(ROOT)})")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
