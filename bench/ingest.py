"""Ingest benchmark: a real daemon fed Alertmanager notifications, a real simulator behind it.

    cd /work/main && python -m bench.ingest [--duration 20] [--clients 4] [--rate 150]

Starts `python -m bridge simulator --rate-per-minute 0 --quiet` and `python -m bridge run -c …`
(through tests.harness) and measures, in this order:

1. idle RSS of the daemon (VmRSS) once it answers /-/healthy;
2. accept-to-delivery latency: `--rate` notifications/s for `--latency-duration` s, paced, each
   with a unique marker in its summary; the time each POST was answered is matched to the
   simulator's receive time (`time` in /_sim/messages) of the message carrying that marker;
3. throughput: `--clients` processes, one keep-alive connection each, post as fast as the daemon
   answers for `--duration` s; accepted requests/s, non-200 answers and transport errors, the
   daemon's CPU per request, what the sender delivered meanwhile, and (3 s more) how fast the
   sender alone then works the backlog off;
4. peak RSS of the daemon over the whole run (VmHWM).

Prints a table and writes bench/results/ingest.json. `--py-spy FILE` also records the daemon with
py-spy during the throughput phase (`pip install py-spy`; FILE.svg flame graph, or .txt/.json for
py-spy's raw/speedscope formats by extension).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import requests

from tests.harness import ROOT, Daemon, Process, Simulator, fixture_json, wait_until

RESULTS = ROOT / "bench" / "results" / "ingest.json"
TOKEN = "tok-bench"
SECRET = "SECbench-signing-secret"
KEYWORD = "告警"
INPUT_PATH = "/alertmanager"  # throughput: a robot with DingTalk's real limit
FAST_PATH = "/alertmanager-fast"  # latency: a robot without a limit, so nothing waits for it
FAST_TOKEN = "tok-bench-fast"
PLACEHOLDER = "@@MARKER@@"
MARKER = re.compile(r"BM[A-Z]\d+x\d{7}")
QUEUE_SIZE = 500_000
DRAIN_WINDOW = 3.0  # seconds the sender is watched alone after the throughput phase
TARGETS = {"requests_per_s": 2000.0, "idle_rss_mb": 60.0}


# -- client processes --------------------------------------------------------------------------


@dataclass
class ClientJob:
    index: int
    port: int
    body: bytes  # contains PLACEHOLDER once (or more); replaced by a unique marker per request
    duration: float
    rate: float  # requests/s for this client; 0 = as fast as answers come
    record: bool  # keep (marker, answered_at) pairs
    path: str = "/alertmanager"
    phase: str = "T"  # part of every marker: each phase's alerts are new to the bridge
    lean: bool = False  # raw-socket HTTP instead of http.client (a cheaper load generator)


@dataclass
class ClientResult:
    index: int
    started: float  # wall clock (time.time) of the first request
    finished: float  # wall clock after the last answer
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    answered: list[tuple[str, float]] = field(default_factory=list)
    cpu: float = 0.0  # CPU seconds this client process used while posting


def _connect(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def client_main(job: ClientJob, go: EventType, out: mp.Queue[ClientResult]) -> None:
    """One client: one persistent HTTP/1.1 connection, sequential requests."""
    connection = _LeanConnection if job.lean else _StdlibConnection
    post = connection(job.port, job.path)
    statuses: Counter[int] = Counter()
    errors = 0
    answered: list[tuple[str, float]] = []
    go.wait()
    cpu_before = time.process_time()
    started = time.time()
    begin = time.monotonic()
    deadline = begin + job.duration
    interval = 1.0 / job.rate if job.rate > 0 else 0.0
    next_at = begin + (interval * job.index / 8 if interval else 0.0)  # spread paced clients
    pieces = job.body.split(PLACEHOLDER.encode())  # joined by each request's marker
    seq = 0
    while True:
        now = time.monotonic()
        if interval:
            if next_at >= deadline:
                break
            if next_at > now:
                time.sleep(next_at - now)
            next_at += interval
        elif now >= deadline:
            break
        marker = f"BM{job.phase}{job.index}x{seq:07d}"
        seq += 1
        try:
            status = post.send(marker.encode().join(pieces))
        except (OSError, http.client.HTTPException, ValueError):
            errors += 1
            post.reconnect()
            continue
        answered_at = time.time()
        statuses[status] += 1
        if job.record and status == 200:
            answered.append((marker, answered_at))
    finished = time.time()
    cpu = time.process_time() - cpu_before
    post.close()
    out.put(ClientResult(job.index, started, finished, dict(statuses), errors, answered, cpu))


class _StdlibConnection:
    """http.client: what most Python clients cost (0.29-0.35 ms of CPU a request here)."""

    def __init__(self, port: int, path: str) -> None:
        self.port, self.path = port, path
        self.headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
        self.conn = _connect(port)
        self.conn.connect()

    def send(self, body: bytes) -> int:
        self.conn.request("POST", self.path, body, self.headers)
        response = self.conn.getresponse()
        response.read()
        if response.will_close:
            self.reconnect()
        return response.status

    def reconnect(self) -> None:
        self.conn.close()
        self.conn = _connect(self.port)

    def close(self) -> None:
        self.conn.close()


class _LeanConnection:
    """HTTP/1.1 over a bare socket, as wrk or hey post: the request's bytes written at once, the
    answer read by its Content-Length. A fraction of http.client's CPU, which on a 2-core host is
    CPU the daemon under test gets back (bench/README.md, issue 13)."""

    def __init__(self, port: int, path: str) -> None:
        self.port = port
        self.start = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.sock = self._open()

    def _open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def send(self, body: bytes) -> int:
        self.sock.sendall(b"%s%d\r\n\r\n%s" % (self.start, len(body), body))
        data = b""
        while (end := data.find(b"\r\n\r\n")) < 0:
            data += self._recv()
        head = data[:end].lower()
        status = int(head[9:12])
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            raise ValueError("an answer without Content-Length")
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop > 0 else len(head)])
        missing = end + 4 + length - len(data)
        while missing > 0:
            chunk = self._recv()
            missing -= len(chunk)
        if b"\r\nconnection: close" in head:
            self.reconnect()
        return status

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the daemon closed the connection")
        return chunk

    def reconnect(self) -> None:
        self.sock.close()
        self.sock = self._open()

    def close(self) -> None:
        self.sock.close()


def add_client_option(parser: argparse.ArgumentParser) -> None:
    """`--client`: the load generator's HTTP (bench.saturate and bench.floor), lean by default."""
    parser.add_argument(
        "--client",
        choices=["lean", "http.client"],
        default="lean",
        help="the clients' HTTP: a bare socket, as wrk posts (~0.08 ms of CPU a request), or"
        " Python's http.client (~0.3 ms; the figures before 2026-12-02)",
    )


def run_clients(jobs: list[ClientJob]) -> list[ClientResult]:
    ctx = mp.get_context("fork")
    go = ctx.Event()
    out: mp.Queue[ClientResult] = ctx.Queue()
    procs = [ctx.Process(target=client_main, args=(job, go, out), daemon=True) for job in jobs]
    for p in procs:
        p.start()
    time.sleep(0.3)  # let every client connect before the clock starts
    go.set()
    longest = max(job.duration for job in jobs) + 60
    results = [out.get(timeout=longest) for _ in procs]
    for p in procs:
        p.join(5)
    return sorted(results, key=lambda r: r.index)


# -- measurements ------------------------------------------------------------------------------


def proc_status_kb(pid: int, key: str) -> int:
    """VmRSS / VmHWM (kB) of a live process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise KeyError(key)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def notification_template() -> bytes:
    """A real Alertmanager 0.25 firing notification for a distinct alert per request: PLACEHOLDER
    is in its alertname (so the title, and a digest line, names it), its fingerprint and group key
    (so the bridge's dedup treats each as new, as Alertmanager would)."""
    payload = fixture_json("firing.json")
    alert = payload["alerts"][0]
    alert["labels"]["alertname"] = f"DiskFull-{PLACEHOLDER}"
    alert["fingerprint"] = PLACEHOLDER
    alert["annotations"]["summary"] = f"Disk almost full {PLACEHOLDER}"
    alert["startsAt"] = datetime.now(UTC).isoformat(timespec="seconds")
    payload["commonLabels"] = dict(alert["labels"])
    payload["groupLabels"] = {"alertname": alert["labels"]["alertname"]}
    payload["groupKey"] = f'{{}}:{{alertname="DiskFull-{PLACEHOLDER}"}}'
    payload["commonAnnotations"]["summary"] = alert["annotations"]["summary"]
    return json.dumps(payload, separators=(",", ":")).encode()


def daemon_config(simulator: Simulator, threads: int | None) -> dict[str, Any]:
    robot = {"type": "robot", "secret": SECRET, "keywords": [KEYWORD], "queue_size": QUEUE_SIZE}
    config: dict[str, Any] = {
        "targets": {
            # Production settings: DingTalk's 20 messages/minute, storms merged into digests.
            "ops": {**robot, "webhook": simulator.robot_url(TOKEN)},
            # For the latency figure the robot may take everything at once (the simulator's
            # robot has no limit either): this measures the bridge, not DingTalk's allowance.
            "fast": {
                **robot,
                "webhook": simulator.robot_url(FAST_TOKEN),
                "rate_limit": {"messages": 0},
            },
        },
        "inputs": {
            "am": {"type": "alertmanager", "path": INPUT_PATH},
            "fast": {"type": "alertmanager", "path": FAST_PATH},
        },
        "rules": [
            {"name": "storm", "inputs": ["am"], "targets": ["ops"], "msgtype": "markdown"},
            {"name": "fast", "inputs": ["fast"], "targets": ["fast"], "msgtype": "markdown"},
        ],
    }
    if threads is not None:
        config["server"] = {"threads": threads}
    return config


def queue_depth(daemon: Daemon) -> int:
    ready = requests.get(f"{daemon.url}/-/ready", timeout=10).json()
    return int(sum(q["pending"] for q in ready.get("queues", {}).values()))


def messages_delivered(simulator: Simulator) -> int:
    return int(simulator.stats()["messages"])


def measure_latency(
    daemon: Daemon, simulator: Simulator, body: bytes, rate: float, duration: float
) -> dict[str, Any]:
    clients = 2
    since = messages_delivered(simulator)
    jobs = [
        ClientJob(
            i, daemon.port, body, duration, rate / clients, record=True, path=FAST_PATH, phase="L"
        )
        for i in range(clients)
    ]
    results = run_clients(jobs)
    answered = {marker: at for r in results for marker, at in r.answered}
    non_200 = sum(n for r in results for s, n in r.statuses.items() if s != 200)
    with contextlib.suppress(AssertionError):  # what never arrives is reported as undelivered
        wait_until(lambda: messages_delivered(simulator) >= since + len(answered), timeout=30)
    delivered_at: dict[str, float] = {}
    for message in simulator.messages(since=str(since), token=FAST_TOKEN):
        for found in MARKER.finditer(message["text"]):  # a digest names many
            delivered_at.setdefault(found.group(0), float(message["time"]))
    latencies = [(delivered_at[m] - at) * 1000 for m, at in answered.items() if m in delivered_at]
    elapsed = max(r.finished for r in results) - min(r.started for r in results)
    return {
        "target_rate": rate,
        "achieved_rate": round(len(answered) / elapsed, 1),
        "requests": len(answered) + non_200,
        "non_200": non_200,
        "errors": sum(r.errors for r in results),
        "matched": len(latencies),
        "undelivered": len(answered) - len(latencies),
        "p50_ms": round(percentile(latencies, 50), 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 99), 2) if latencies else None,
        "max_ms": round(max(latencies), 2) if latencies else None,
    }


def measure_throughput(
    daemon: Daemon,
    simulator: Simulator,
    body: bytes,
    clients: int,
    duration: float,
    py_spy: Path | None,
) -> dict[str, Any]:
    pid = daemon.proc.pid
    delivered_before = messages_delivered(simulator)
    cpu_before = cpu_seconds(pid)
    spy = start_py_spy(pid, py_spy, duration) if py_spy else None
    jobs = [
        ClientJob(i, daemon.port, body, duration, 0.0, record=False, phase="T")
        for i in range(clients)
    ]
    results = run_clients(jobs)
    cpu_used = cpu_seconds(pid) - cpu_before
    delivered = messages_delivered(simulator) - delivered_before
    backlog = queue_depth(daemon)
    if spy is not None:
        spy.wait(duration + 60)
    # With the load gone, how fast does the sender alone work the backlog off?
    drain_from, drain_start = messages_delivered(simulator), time.monotonic()
    time.sleep(DRAIN_WINDOW)
    drained = messages_delivered(simulator) - drain_from
    drain_per_s = drained / (time.monotonic() - drain_start)
    statuses: Counter[int] = Counter()
    for r in results:
        statuses.update(r.statuses)
    ok = statuses.pop(200, 0)
    elapsed = max(r.finished for r in results) - min(r.started for r in results)
    return {
        "clients": clients,
        "duration_s": round(elapsed, 2),
        "accepted": ok,
        "requests_per_s": round(ok / elapsed, 1),
        "non_200": dict(statuses),
        "errors": sum(r.errors for r in results),
        "delivered_during_run": delivered,
        "delivered_per_s": round(delivered / elapsed, 1),
        "backlog_at_end": backlog,
        "drain_per_s": round(drain_per_s, 1),
        "daemon_cpu_s": round(cpu_used, 2),
        "daemon_cpu_ms_per_request": round(cpu_used * 1000 / ok, 3) if ok else None,
    }


def start_py_spy(pid: int, out: Path, duration: float) -> subprocess.Popen[bytes]:
    exe = shutil.which("py-spy")
    if exe is None:
        sys.exit("--py-spy needs py-spy on PATH (pip install py-spy)")
    fmt = {".txt": "raw", ".json": "speedscope"}.get(out.suffix, "flamegraph")
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--duration", str(round(duration)), "--rate", "200",
         "--format", fmt, "--output", str(out), "--nonblocking", "--gil"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


# -- driver ------------------------------------------------------------------------------------


def _close(process: Process | None, timeout: float) -> None:
    if process is None:
        return
    process.stop(timeout)
    handle = getattr(process, "_log", None)  # tests.harness.Process never closes its log file
    if handle is not None:
        handle.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--duration", type=float, default=20.0, help="throughput phase, s")
    parser.add_argument("--clients", type=int, default=4, help="throughput client processes")
    parser.add_argument("--rate", type=float, default=150.0, help="latency phase, requests/s")
    parser.add_argument("--latency-duration", type=float, default=10.0, help="latency phase, s")
    parser.add_argument(
        "--threads", type=int, help="server.threads of the daemon (default: its own)"
    )
    parser.add_argument("--py-spy", type=Path, metavar="FILE", help="profile the throughput phase")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results ({RESULTS})")
    args = parser.parse_args(argv)

    simulator: Simulator | None = None
    daemon: Daemon | None = None
    try:
        simulator = Simulator(
            spec={
                "robots": {
                    TOKEN: {"secret": SECRET, "keywords": [KEYWORD]},  # DingTalk's 20/min
                    FAST_TOKEN: {"secret": SECRET, "keywords": [KEYWORD], "rate_per_minute": 0},
                }
            },
            extra=["--quiet"],
        )
        daemon = Daemon(daemon_config(simulator, args.threads))
        pid = daemon.proc.pid
        time.sleep(1.0)  # settle: imports done, threads started
        idle_rss_kb = proc_status_kb(pid, "VmRSS")

        body = notification_template()
        # Warm-up: first requests pay for lazy imports and connection set-up.
        warm = [ClientJob(0, daemon.port, body, 1.0, 50.0, record=False, phase="W", path=FAST_PATH)]
        run_clients(warm)
        wait_until(lambda: queue_depth(daemon) == 0, timeout=30)

        latency = measure_latency(daemon, simulator, body, args.rate, args.latency_duration)
        wait_until(lambda: queue_depth(daemon) == 0, timeout=30)
        throughput = measure_throughput(
            daemon, simulator, body, args.clients, args.duration, args.py_spy
        )
        rss = {
            "idle_rss_mb": round(idle_rss_kb / 1024, 1),
            "end_rss_mb": round(proc_status_kb(pid, "VmRSS") / 1024, 1),
            "peak_rss_mb": round(proc_status_kb(pid, "VmHWM") / 1024, 1),
        }
    except BaseException:
        if daemon is not None:
            print(f"--- daemon log (tail) ---\n{daemon.log()[-4000:]}", file=sys.stderr)
        raise
    finally:
        _close(daemon, 3.0)  # a backlog may remain: do not wait for it to drain
        _close(simulator, 5.0)

    results = {
        "benchmark": "ingest",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(
            ["python -m bench.ingest", *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "throughput": throughput,
        "latency": latency,
        "rss": rss,
        "targets": TARGETS,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    print_table(results)
    print(f"\nwritten to {args.output}")
    return 0


def print_table(results: dict[str, Any]) -> None:
    t, lat, rss = results["throughput"], results["latency"], results["rss"]
    rps_ok = t["requests_per_s"] >= TARGETS["requests_per_s"]
    rss_ok = rss["idle_rss_mb"] < TARGETS["idle_rss_mb"]
    rows = [
        ("accepted requests/s", f"{t['requests_per_s']:.0f}",
         f">= {TARGETS['requests_per_s']:.0f} {'ok' if rps_ok else 'MISSED'}"),
        ("  clients x duration", f"{t['clients']} x {t['duration_s']} s", ""),
        ("  non-200 / errors", f"{sum(t['non_200'].values())} / {t['errors']}", ""),
        ("  delivered/s meanwhile", f"{t['delivered_per_s']:.0f}",
         f"backlog at end {t['backlog_at_end']}"),
        ("  delivered/s after (sender alone)", f"{t['drain_per_s']:.0f}", ""),
        ("  daemon CPU per request", f"{t['daemon_cpu_ms_per_request']} ms", ""),
        ("latency p50 (accept->deliver)", f"{lat['p50_ms']} ms",
         f"at {lat['achieved_rate']}/s of {lat['target_rate']:.0f}/s"),
        ("latency p99", f"{lat['p99_ms']} ms", f"max {lat['max_ms']} ms"),
        ("  matched / undelivered", f"{lat['matched']} / {lat['undelivered']}",
         f"non-200 {lat['non_200']}"),
        ("idle RSS", f"{rss['idle_rss_mb']} MB",
         f"< {TARGETS['idle_rss_mb']:.0f} {'ok' if rss_ok else 'MISSED'}"),
        ("peak RSS (VmHWM)", f"{rss['peak_rss_mb']} MB", f"at end {rss['end_rss_mb']} MB"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>14}  {note}")


if __name__ == "__main__":
    sys.exit(main())
