"""The one table `bench/run` prints, from the results the benchmarks wrote to bench/results/.

cd /work/main && python -m bench.table
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def _load(name: str) -> dict[str, Any]:
    path = RESULTS / f"{name}.json"
    loaded: dict[str, Any] = json.loads(path.read_text("utf-8")) if path.exists() else {}
    return loaded


def rows() -> list[tuple[str, str, str]]:
    ingest, tail, reload, callback, stream, saturate, console = (
        _load(n) for n in ("ingest", "tail", "reload", "callback", "stream", "saturate", "console")
    )
    out: list[tuple[str, str, str]] = []
    if ingest:
        out += [
            (
                "ingest, accepted requests/s (each committed)",
                f"{ingest['throughput']['requests_per_s']:,.0f}",
                "≥ 2,000",
            ),
            (
                "accept → delivery p50 / p99",
                f"{ingest['latency']['p50_ms']} / {ingest['latency']['p99_ms']} ms",
                "",
            ),
            (
                "idle RSS / loaded (peak) RSS",
                f"{ingest['rss']['idle_rss_mb']} / {ingest['rss']['peak_rss_mb']} MB",
                "idle < 60 MB",
            ),
        ]
    if tail:
        out += [
            (
                "tail lines/s through the daemon (5 patterns)",
                f"{tail['daemon']['lines_per_s']:,}",
                "≥ 500,000",
            ),
            ("grep -c -E lines/s, same file and patterns", f"{tail['grep']['lines_per_s']:,}", ""),
            ("daemon ÷ grep", f"{tail['ratio_daemon_to_grep']}", ""),
        ]
    if reload:
        out.append(
            (
                "config save → new rules live (median / max)",
                f"{reload['median_s']} / {reload['max_s']} s",
                "< 1.5 s",
            )
        )
    if callback:
        out.append(
            (
                "DingTalk callback answered, p50 / p99",
                f"{callback['p50_ms']} / {callback['p99_ms']} ms",
                "< 1,500 ms",
            )
        )
    if stream:
        out.append(
            (
                "chat command over Stream mode answered, p50 / p99",
                f"{stream['p50_ms']} / {stream['p99_ms']} ms",
                "",
            )
        )
    if console:
        out += [
            (
                f"console: {what}, p50 / p99",
                f"{console[key]['p50_ms']} / {console[key]['p99_ms']} ms",
                "",
            )
            for key, what in (
                ("playground_render", "playground render of a typed template"),
                ("overview_page", "Overview page"),
                ("messages_page", "Messages page (50 sent)"),
            )
            if key in console
        ]
    for result in [saturate, *(_load(p.stem) for p in sorted(RESULTS.glob("saturate-*.json")))]:
        out += _saturated(result)
    out += [  # a sender's turn against a long queue (bench/backlog.py)
        (
            f"claim of 100 rows at a backlog of {run['backlog']:,}: write transaction / read",
            f"{run['claim_write_ms']:.2f} / {run['read_ms']:.2f} ms",
            "",
        )
        for run in _load("backlog").get("results", [])
    ]
    out += [  # what the Python stack alone allows, for scale (bench/floor.py)
        (
            f"floor ({run['mode']}, {run['processes']} process(es)), {run['clients']} clients:"
            " accepted/s",
            f"{run['accepted_per_s']:,.0f}",
            "",
        )
        for run in _load("floor").get("runs", [])
    ]
    return out


def _saturated(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """One row per client count of a bench.saturate run, named by its store and processes."""
    setup = result.get("store", "sqlite")
    if result.get("replicas", 1) > 1:
        setup += f", {result['replicas']} replicas"
    if result.get("workers", 1) > 1:
        setup += f", {result['workers']} workers"
    if result.get("background_worker"):
        setup += ", background worker"
    rows = []
    for run in result.get("runs", []):
        delivered = "all delivered" if run["all_delivered_after_s"] is not None else "NOT all"
        rows.append(
            (
                f"saturated ({setup}), fast DingTalk, {run['clients']} clients: accepted/s"
                f" ({delivered})",
                f"{run['requests_per_s']:,.0f}",
                "≥ 2,500" if setup.startswith("sqlite") else "",
            )
        )
    return rows


def main() -> int:
    table = rows()
    if not table:
        print("no results yet: run bench/run", file=sys.stderr)
        return 1
    print("| figure | measured | target |")
    print("| --- | --- | --- |")
    for figure, measured, target in table:
        print(f"| {figure} | {measured} | {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
