"""Stream-mode benchmark: how long a chat command takes over DingTalk's Stream mode, from the
gateway pushing the robot message to its answer reaching the chat.

    cd /work/main && python -m bench.stream [--commands 200]

A real daemon with a `dingtalk_robot` input that listens over Stream mode, connected to the
simulator's gateway. Each command (`status`, which reads the store) is pushed as a robot frame;
the daemon acks it, runs it, and posts the answer to the frame's sessionWebhook. The time is from
before the push to the answer appearing in the simulator (polled every millisecond), one command
at a time: what a person typing `@robot status` waits, without DingTalk's own network.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.harness import Daemon, Simulator, wait_until

KEY, SECRET = "dingbenchapp", "bench-app-secret"
SESSION = "bench-session"
RESULTS = Path(__file__).parent / "results" / "stream.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__)
    parser.add_argument("--commands", type=int, default=200)
    args = parser.parse_args(argv)
    simulator = Simulator(spec={"apps": {KEY: {"app_secret": SECRET, "agent_id": 1}}})
    directory = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    app = {"listen": "stream", "app_key": KEY, "app_secret": SECRET, "api_base": simulator.url}
    config = {
        "state_dir": str(directory / "state"),
        "targets": {"ops": {"type": "robot", "webhook": simulator.robot_url("tok")}},
        "inputs": {"chat": {"type": "dingtalk_robot", **app}},
        "rules": [{"name": "all", "targets": ["ops"]}],
    }
    daemon = Daemon(config, directory=directory)
    timings: list[float] = []
    try:
        wait_until(lambda: _connected(daemon), timeout=30)
        with requests.Session() as session:
            for n in range(args.commands):
                robot = {
                    "text": "status",
                    "senderStaffId": "bench",
                    "sessionWebhook": f"{simulator.url}/robot/sendBySession?session={SESSION}",
                }
                started = time.perf_counter()
                session.post(
                    f"{simulator.url}/_sim/stream/push",
                    json={"app_key": KEY, "robot": robot},
                    timeout=5,
                ).raise_for_status()
                while len(_replies(session, simulator)) <= n:
                    if time.perf_counter() - started > 10:
                        print(f"command {n}: no answer within 10 s", file=sys.stderr)
                        return 1
                    time.sleep(0.001)
                timings.append((time.perf_counter() - started) * 1000)
    finally:
        daemon.stop()
        simulator.stop()
    timings.sort()
    figures = {
        "commands": args.commands,
        "p50_ms": round(statistics.median(timings), 2),
        "p99_ms": round(timings[int(len(timings) * 0.99) - 1], 2),
        "max_ms": round(timings[-1], 2),
    }
    for name, value in figures.items():
        print(f"{name:10} {value}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _connected(daemon: Daemon) -> bool:
    state = requests.get(f"{daemon.url}/-/ready", timeout=5).json()
    link = state.get("streams", {}).get(KEY)
    return link is not None and link["state"] == "connected"


def _replies(session: requests.Session, simulator: Simulator) -> list[object]:
    answer = session.get(f"{simulator.url}/_sim/messages", params={"token": SESSION}, timeout=5)
    messages: list[object] = answer.json()["messages"]
    return messages


if __name__ == "__main__":
    sys.exit(main())
