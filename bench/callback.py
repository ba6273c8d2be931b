"""Callback benchmark: how fast the daemon answers DingTalk's event callbacks, against the
1,500 ms DingTalk allows (reference/dingtalk.md §4.2).

    cd /work/main && python -m bench.callback [--requests 500]

A real daemon with a `dingtalk_callback` input and a rule sending each event to a robot on the
simulator. Each request is a fresh, encrypted and signed `user_add_org` callback (built here the
way DingTalk builds them), posted over one keep-alive connection; the time is from sending to
the encrypted `success` answer, which comes after the event is committed to the outbox.
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

from bridge.dingtalk import callback_crypto as crypto
from tests.harness import Daemon, Simulator

TOKEN = "bench-token"
AES_KEY = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7"
OWNER = "dingbenchcorp"
RESULTS = Path(__file__).parent / "results" / "callback.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.callback", description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args(argv)
    simulator = Simulator(spec={"robots": {"tok": {"rate_per_minute": 0}}}, extra=["--quiet"])
    directory = Path(tempfile.mkdtemp(prefix="bench-callback-"))
    config = {
        "state_dir": str(directory / "state"),
        "targets": {
            "ops": {
                "type": "robot",
                "webhook": simulator.robot_url("tok"),
                "rate_limit": {"messages": 0},
            }
        },
        "inputs": {
            "events": {
                "type": "dingtalk_callback",
                "path": "/events",
                "token": TOKEN,
                "aes_key": AES_KEY,
                "owner_key": OWNER,
            }
        },
        "rules": [{"name": "joins", "targets": ["ops"], "repeat_interval": "0s"}],
    }
    daemon = Daemon(config, directory=directory)
    key = crypto.derive_key(AES_KEY)
    timings: list[float] = []
    try:
        with requests.Session() as session:
            for n in range(args.requests):
                event = {"EventType": "user_add_org", "UserId": [f"user-{n}"], "TimeStamp": str(n)}
                encrypt = crypto.encrypt(key, json.dumps(event), OWNER, f"{n:016d}".encode())
                timestamp, nonce = str(int(time.time() * 1000)), f"nonce-{n}"
                query = f"signature={crypto.signature(TOKEN, timestamp, nonce, encrypt)}"
                query += f"&timestamp={timestamp}&nonce={nonce}"
                started = time.perf_counter()
                answer = session.post(
                    f"{daemon.url}/events?{query}", json={"encrypt": encrypt}, timeout=5
                )
                timings.append((time.perf_counter() - started) * 1000)
                if answer.status_code != 200:
                    print(f"request {n}: {answer.status_code} {answer.text}", file=sys.stderr)
                    return 1
    finally:
        daemon.stop()
        simulator.stop()
    timings.sort()
    figures = {
        "requests": args.requests,
        "p50_ms": round(statistics.median(timings), 2),
        "p99_ms": round(timings[int(len(timings) * 0.99) - 1], 2),
        "max_ms": round(timings[-1], 2),
        "budget_ms": 1500,
    }
    for name, value in figures.items():
        print(f"{name:10} {value}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
