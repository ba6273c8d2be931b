"""Storm benchmark: 1,000 distinct alerts within a minute into one robot limited to 20/minute.

    cd /work/main && python -m bench.storm [--alerts 1000] [--over 30]

The simulator enforces DingTalk's real limit (20 messages per robot per minute, then a 10-minute
lockout). Reports how many alerts reached the chat, how many messages carried them, when the
last one arrived, and whether DingTalk ever answered 130101 (it must not).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import requests

from tests.harness import Daemon, Simulator, am_alert_payload

TOKEN = "tok-storm"
RESULTS = Path(__file__).parent / "results" / "storm.json"
NAME = re.compile(r"Storm\d{5}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.storm", description=__doc__)
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--over", type=float, default=30.0, help="seconds to post them over")
    parser.add_argument("--deadline", type=float, default=300.0, help="give up after, seconds")
    args = parser.parse_args(argv)

    simulator = Simulator(spec={"robots": {TOKEN: {"keywords": ["告警"]}}}, extra=["--quiet"])
    daemon = Daemon(
        {
            "targets": {
                "ops": {
                    "type": "robot",
                    "webhook": simulator.robot_url(TOKEN),
                    "keywords": ["告警"],
                }
            },
            "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
            "rules": [{"name": "all", "targets": ["ops"]}],
        }
    )
    try:
        session = requests.Session()
        start = time.monotonic()
        accepted = 0
        for i in range(args.alerts):
            due = start + args.over * i / args.alerts
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            response = session.post(
                f"{daemon.url}/am", json=am_alert_payload(f"Storm{i:05d}"), timeout=10
            )
            accepted += response.status_code == 200
        posted = time.monotonic() - start
        seen: set[str] = set()
        last = start
        messages: list[dict[str, Any]] = []
        while time.monotonic() - start < args.deadline and len(seen) < accepted:
            messages = simulator.messages()
            found = {n for m in messages for n in NAME.findall(m["text"] + m["title"])}
            if len(found) > len(seen):
                last = time.monotonic()
            seen = found
            time.sleep(1.0)
        refused = [r for r in simulator.requests_seen() if r.get("errcode") == 130101]
        result = {
            "alerts_posted": args.alerts,
            "alerts_accepted": accepted,
            "posted_within_s": round(posted, 1),
            "alerts_delivered": len(seen),
            "messages_used": len(messages),
            "time_to_last_delivery_s": round(last - start, 1),
            "errcode_130101": len(refused),
        }
    finally:
        daemon.stop()
        simulator.stop()
    for key, value in result.items():
        print(f"{key:28} {value}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    ok = result["alerts_delivered"] == accepted == args.alerts and not refused
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
