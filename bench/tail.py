"""File-input benchmark: lines per second through a tailed file with five patterns, beside
`grep -c -E` of the same five patterns on the same file.

    cd /work/main && python -m bench.tail [--lines 3000000] [--dense]

A generated log (deterministic; ~110 bytes a line, mostly INFO access lines; about 0.2% of the
lines match one of the five patterns, as errors are rare in real logs) is written once to a
temporary directory and read twice into the page cache. Then:

- `grep -c -E -e P1 ... -e P5` (LC_ALL=C, the patterns without their group names): the
  physical ceiling, one core, best of three.
- core: the file input's reader and the patterns in this process, no store (FileReader.read
  plus find_pattern on each candidate): best of three.
- daemon: the real daemon with the file as a `read_from: beginning` file input and a robot target
  on the simulator. The time runs from the input's `started_at` to the moment `/-/ready`
  reports the offset at the end of the file, so it includes committing every event with its
  offset to the outbox. Events are sent to the simulator meanwhile (digests, as in a storm).

`--dense` uses patterns whose fixed text is on most lines (the filter narrows nothing).

Target (issue 4): at least 500,000 lines/s through the file input.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests
import yaml

from tests.harness import Daemon, Simulator

RESULTS = Path(__file__).parent / "results"

PATTERNS = [
    r"(?P<level>ERROR|FATAL) +\[(?P<thread>[a-z0-9-]+)\] (?P<logger>[a-z.]+) - (?P<message>.*)",
    r"status=(?P<status>5[0-9][0-9]) dur_ms=(?P<dur>[0-9]+)",
    r"panic: (?P<message>.*)",
    r"Traceback \(most recent call last\)",
    r"OutOfMemoryError|oom-kill",
]

# The hard case for the bridge's filter: each pattern's fixed text is on most lines, so it
# narrows nothing and the regex engine must look at every line (`--dense`).
DENSE_PATTERNS = [
    r"http\.access - GET (?P<path>\S+) status=(?P<status>5[0-9][0-9])",
    r"\[worker-(?P<worker>[0-9]+)\] runtime - panic",
    r"dur_ms=(?P<dur>9[0-9][0-9])",
    r"user=u(?P<user>[0-9]+)9999 ",
    r"(?P<level>DEBUG|INFO) +\[worker-8\]",
]

LOGGERS = ["http.access", "db.pool", "cache.redis", "auth.session", "queue.worker"]
PATHS = ["/api/v1/items", "/api/v1/users", "/healthz", "/api/v2/orders", "/static/app.js"]


def generate(path: Path, lines: int, seed: int = 7) -> None:
    """A log of `lines` lines; ~0.2% match one of PATTERNS."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", buffering=1 << 20) as out:
        chunk: list[str] = []
        for n in range(lines):
            stamp = f"2026-11-28T10:{n // 60000 % 60:02d}:{n // 1000 % 60:02d}.{n % 1000:03d}Z"
            worker = f"worker-{n % 8}"
            roll = rng.random()
            if roll < 0.0008:
                line = (
                    f"{stamp} ERROR [{worker}] {rng.choice(LOGGERS)} - request {n} failed: timeout"
                )
            elif roll < 0.0014:
                line = (
                    f"{stamp} INFO  [{worker}] http.access - GET {rng.choice(PATHS)} "
                    f"status=503 dur_ms={rng.randint(1, 900)} req={n}"
                )
            elif roll < 0.0017:
                line = f"{stamp} WARN  [{worker}] runtime - panic: index out of range [{n}]"
            elif roll < 0.0019:
                line = f"{stamp} ERROR [{worker}] py.worker - Traceback (most recent call last)"
            elif roll < 0.0020:
                line = f"{stamp} WARN  [{worker}] kernel - oom-kill: pid {n}"
            else:
                level = "DEBUG" if roll > 0.9 else "INFO "
                line = (
                    f"{stamp} {level} [{worker}] http.access - GET {rng.choice(PATHS)}/{n % 997} "
                    f"status=200 dur_ms={rng.randint(1, 90)} user=u{n % 5000}"
                )
            chunk.append(line)
            if len(chunk) == 10_000:
                out.write("\n".join(chunk) + "\n")
                chunk.clear()
        if chunk:
            out.write("\n".join(chunk) + "\n")


def grep_patterns() -> list[str]:
    return [re.sub(r"\(\?P<[a-z]+>", "(", p) for p in PATTERNS]


def run_grep(path: Path) -> tuple[float, int]:
    args = ["grep", "-c", "-E"]
    for pattern in grep_patterns():
        args += ["-e", pattern]
    best, count = float("inf"), 0
    for _ in range(3):
        start = time.perf_counter()
        done = subprocess.run(
            [*args, str(path)], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}
        )
        best = min(best, time.perf_counter() - start)
        count = int(done.stdout.strip() or 0)
    return best, count


def file_input(path: Path) -> dict[str, object]:
    return {
        "type": "file",
        "paths": [str(path)],
        "read_from": "beginning",
        "poll_interval": "100ms",
        "patterns": [{"regex": p} for p in PATTERNS],
    }


def run_core(path: Path, directory: Path) -> tuple[float, int]:
    """The reader and the patterns alone, in this process."""
    from bridge.config.model import FileInput
    from bridge.inputs.filetail.reader import FileReader
    from bridge.inputs.filetail.records import find_pattern
    from bridge.inputs.filetail.scan import searcher
    from tests.harness import compile_yaml

    text = yaml.safe_dump(
        {
            "state_dir": str(directory / "core-state"),
            "targets": {
                "t": {"type": "robot", "webhook": "http://127.0.0.1:9/robot/send?access_token=x"}
            },
            "inputs": {"log": file_input(path)},
            "rules": [{"name": "r", "targets": ["t"]}],
        }
    )
    spec = compile_yaml(directory, text).inputs["log"]
    assert isinstance(spec, FileInput)
    searchers = [searcher(p.regex) for p in spec.patterns]
    best, matched = float("inf"), 0
    for _ in range(3):
        fd = os.open(path, os.O_RDONLY)
        info = os.fstat(fd)
        start = time.perf_counter()
        reader = FileReader(spec, (info.st_dev, info.st_ino), str(path), fd, 0, searchers, 0.0)
        matched = 0
        while True:
            records = reader.read(64 << 20, 0.0)
            matched += sum(1 for r in records if find_pattern(spec, r.text) is not None)
            if reader.at_eof:
                break
        best = min(best, time.perf_counter() - start)
        reader.close()
    return best, matched


def run_daemon(path: Path, directory: Path, size: int) -> tuple[float, int, float]:
    simulator = Simulator(spec={"robots": {"tok": {}}}, extra=["--quiet"])
    config = {
        "state_dir": str(directory / "state"),
        "targets": {"ops": {"type": "robot", "webhook": simulator.robot_url("tok")}},
        "inputs": {"log": file_input(path)},
        "rules": [{"name": "errors", "targets": ["ops"], "repeat_interval": "0s"}],
    }
    daemon = Daemon(config, directory=directory)
    try:
        while True:
            # Done once the offset committed to the store (in the same transaction as the events
            # of the lines before it) is at the end of the file. The offset /-/ready shows is what
            # was *read*: it reaches the end as soon as the last block is read, before that
            # block's lines are matched and counted. Waiting for it and `events ==
            # lines_matched` once stopped the clock while the last block's 78 matches were still
            # being counted (314 against grep's 392); no line was lost.
            if committed_offset(directory / "state") >= size:
                status = requests.get(f"{daemon.url}/-/ready", timeout=5).json()["files"]["log"]
                # Counted just after the commit returns: equal within moments, final from then.
                if status["events"] == status["lines_matched"]:
                    done = datetime.now().astimezone()
                    break
            time.sleep(0.02)
        started = datetime.fromisoformat(status["started_at"])
        rss = _rss_mb(daemon.proc.pid)
        return (done - started).total_seconds(), int(status["events"]), rss
    finally:
        daemon.stop()
        simulator.stop()


def committed_offset(state_dir: Path) -> int:
    """The offset of the input `log` in its file, as committed to the state store (0 before)."""
    db = state_dir / "state.db"
    if not db.exists():
        return 0
    try:
        with contextlib.closing(
            sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True, timeout=5)
        ) as conn:
            row = conn.execute("SELECT MAX(offset) FROM tail_files WHERE input = 'log'").fetchone()
    except sqlite3.OperationalError:  # the schema is being created
        return 0
    return int(row[0] or 0)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tail", description=__doc__)
    parser.add_argument("--lines", type=int, default=3_000_000)
    parser.add_argument("--dense", action="store_true", help="patterns whose text is on most lines")
    args = parser.parse_args(argv)
    if args.dense:
        PATTERNS[:] = DENSE_PATTERNS
    directory = Path(tempfile.mkdtemp(prefix="bench-tail-"))
    # SIGTERM (a CI timeout, `kill`) ends the run through the `finally` below, as Ctrl-C does:
    # the generated log is hundreds of MiB and must not be left behind.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        return _run(args, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _run(args: argparse.Namespace, directory: Path) -> int:
    path = directory / "app.log"
    generate(path, args.lines)
    size = path.stat().st_size
    for _ in range(2):  # into the page cache, as a tailer that keeps up reads it
        with path.open("rb") as warm:
            while warm.read(1 << 24):
                pass
    grep_time, grep_count = run_grep(path)
    core_time, core_count = run_core(path, directory)
    daemon_time, daemon_events, peak_rss = run_daemon(path, directory, size)
    figures = {
        "lines": args.lines,
        "bytes": size,
        "patterns": len(PATTERNS),
        "python": sys.version.split()[0],
        "grep": {
            "seconds": round(grep_time, 3),
            "lines_per_s": round(args.lines / grep_time),
            "matching": grep_count,
        },
        "core": {
            "seconds": round(core_time, 3),
            "lines_per_s": round(args.lines / core_time),
            "matching": core_count,
        },
        "daemon": {
            "seconds": round(daemon_time, 3),
            "lines_per_s": round(args.lines / daemon_time),
            "events": daemon_events,
            "peak_rss_mb": round(peak_rss, 1),
        },
    }
    figures["ratio_daemon_to_grep"] = round(grep_time / daemon_time, 3)
    figures["ratio_core_to_grep"] = round(grep_time / core_time, 3)
    print(
        f"file: {args.lines:,} lines, {size / 2**20:.0f} MiB, {len(PATTERNS)} patterns, warm cache"
    )
    print(f"{'':8} {'seconds':>8} {'lines/s':>12} {'MiB/s':>8} {'matching':>9}")
    for name, seconds, count in (
        ("grep", grep_time, grep_count),
        ("core", core_time, core_count),
        ("daemon", daemon_time, daemon_events),
    ):
        print(
            f"{name:8} {seconds:8.2f} {args.lines / seconds:12,.0f} "
            f"{size / 2**20 / seconds:8.0f} {count:9,}"
        )
    print(f"daemon / grep speed: {figures['ratio_daemon_to_grep']:.2f}; peak RSS {peak_rss:.1f} MB")
    RESULTS.mkdir(exist_ok=True)
    name = "tail-dense.json" if args.dense else "tail.json"
    (RESULTS / name).write_text(json.dumps(figures, indent=2) + "\n")
    ok = core_count == grep_count == daemon_events
    if not ok:
        print("the three counts of matching lines differ", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
