"""Reload benchmark: the time from saving the config to the new rules being live.

    cd /work/main && python -m bench.reload [--saves 10]

Each round saves a config whose rule title differs (an editor-style rename over the file) and
polls `/-/ready` until the daemon reports the new config's hash. The time includes the 1 s
debounce that merges bursts of saves. Target: under 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml

from tests.harness import Daemon, Simulator

RESULTS = Path(__file__).parent / "results" / "reload.json"


def config_text(simulator: Simulator, round_: int, state: Path) -> str:
    return yaml.safe_dump(
        {
            "state_dir": str(state),
            "server": {"listen": "127.0.0.1:{port}"},
            "targets": {"ops": {"type": "robot", "webhook": simulator.robot_url("tok")}},
            "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
            "rules": [{"name": "all", "targets": ["ops"], "title": f"round {round_}"}],
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reload", description=__doc__)
    parser.add_argument("--saves", type=int, default=10)
    args = parser.parse_args(argv)
    simulator = Simulator(spec={"robots": {"tok": {}}}, extra=["--quiet"])
    directory = Path(tempfile.mkdtemp(prefix="bench-reload-"))
    daemon = Daemon(config_text(simulator, 0, directory / "state"), directory=directory)
    timings: list[float] = []
    try:
        for round_ in range(1, args.saves + 1):
            before = requests.get(f"{daemon.url}/-/ready", timeout=5).json()["config"]["hash"]
            text = config_text(simulator, round_, directory / "state")
            tmp = daemon.config_path.with_suffix(".new")
            tmp.write_text(text.replace("{port}", str(daemon.port)), "utf-8")
            saved = time.monotonic()
            os.replace(tmp, daemon.config_path)
            while True:
                ready = requests.get(f"{daemon.url}/-/ready", timeout=5).json()
                if ready["config"]["hash"] != before:
                    timings.append(time.monotonic() - saved)
                    break
                if time.monotonic() - saved > 10:
                    raise SystemExit(f"round {round_}: not live after 10 s\n{daemon.log()[-2000:]}")
                time.sleep(0.01)
            time.sleep(0.2)
    finally:
        daemon.stop()
        simulator.stop()
    result = {
        "saves": len(timings),
        "median_s": round(statistics.median(timings), 3),
        "max_s": round(max(timings), 3),
        "min_s": round(min(timings), 3),
    }
    for key, value in result.items():
        print(f"{key:10} {value}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["max_s"] < 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
