"""Console benchmark: how long the console keeps an operator waiting.

    cd /work/main && python -m bench.console [--requests 200]

A real daemon with the console on and one robot target at the simulator; requests with the
operator's bearer token, one at a time, timed from send to the whole answer:
- the playground's render (`POST /console/api/playground/render`), what each pause in typing
  costs: the config compiled with the typed template, the Alertmanager sample decided against
  the live state, each part drawn as DingTalk shows it (a markdown template with a heading, a
  table and a mention; a new template text each time, so nothing is cached);
- the Overview page (what its refresh every 3 s costs), and the Messages page with 50 sent
  messages in the history.
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

from tests.harness import Daemon, Simulator, am_alert_payload, fixture_json, wait_until

TOKEN = "bench-console-token-0123456789"
ROBOT = "bench-console-robot"
RESULTS = Path(__file__).parent / "results" / "console.json"
TEMPLATE = "## {{ labels.alertname }} %d\n\n| host | use |\n|---|---|\n| a | 95%% |\n\n@13800000000"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    simulator = Simulator(spec={"robots": {ROBOT: {"rate_per_minute": 0}}})
    directory = Path(tempfile.mkdtemp(prefix="bench-console-"))
    config = {
        "state_dir": str(directory / "state"),
        "server": {"console": {"token": TOKEN}},
        "targets": {
            "ops": {
                "type": "robot",
                "webhook": simulator.robot_url(ROBOT),
                "rate_limit": {"messages": 0},
            }
        },
        "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
        "people": {"alice": {"mobile": "13800000000"}},
        "rules": [{"name": "all", "targets": ["ops"], "mention": ["alice"]}],
    }
    try:
        daemon = Daemon(config, directory=directory)
    except BaseException:
        simulator.stop()  # no simulator left behind when the daemon does not start
        raise
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    figures: dict[str, dict[str, float]] = {}
    try:
        for n in range(50):  # the history the Messages page lists
            daemon.post("/am", am_alert_payload(f"Bench{n}"))
        wait_until(lambda: len(simulator.messages(token=ROBOT)) >= 50, timeout=60)
        payload = json.dumps(fixture_json("firing.json"))
        with requests.Session() as session:
            session.headers.update(bearer)

            def render(n: int) -> requests.Response:
                body = {"input": "am", "payload": payload, "rule": "all", "template": TEMPLATE % n}
                return session.post(
                    f"{daemon.url}/console/api/playground/render", json=body, timeout=10
                )

            shown = render(-1).json()
            if shown["problems"] or not shown["messages"]:  # time only a render that renders
                print(f"the playground did not render: {shown}", file=sys.stderr)
                return 1
            figures["playground_render"] = _timed(render, args.requests)
            figures["overview_page"] = _timed(
                lambda n: session.get(f"{daemon.url}/console/", timeout=10), args.requests
            )
            figures["messages_page"] = _timed(
                lambda n: session.get(f"{daemon.url}/console/messages", timeout=10), args.requests
            )
    finally:
        daemon.stop()
        simulator.stop()
    for name, values in figures.items():
        print(f"{name:18} p50 {values['p50_ms']} ms  p99 {values['p99_ms']} ms")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _timed(call: object, count: int) -> dict[str, float]:
    assert callable(call)
    timings = []
    for n in range(count):
        started = time.perf_counter()
        answer = call(n)
        timings.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    timings.sort()
    return {
        "requests": count,
        "p50_ms": round(statistics.median(timings), 2),
        "p99_ms": round(timings[max(0, int(len(timings) * 0.99) - 1)], 2),
        "max_ms": round(timings[-1], 2),
    }


if __name__ == "__main__":
    sys.exit(main())
