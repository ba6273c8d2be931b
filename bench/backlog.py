"""A sender's turn against a long queue: what it costs the store's one writer.

    python -m bench.backlog [--backlogs 1000 20000 100000] [--repeat 20]

A SQLite state store (the daemon's, in a temporary directory) holds BACKLOG pending messages
for one target, each with an Alertmanager event as the intake stores it. Then, `--repeat` times:
a sender's turn as delivery/claims.py takes it (the read: when the next row is due and how long
the queue is; the write: the claim of 100 rows, committed) and, outside the measure, those rows
let go again. Reported per backlog: the median milliseconds of the claim's write transaction
(during which no request of any worker can commit) and of the read.

This is the case of a storm against a fast target, or of a queue that piled up while DingTalk
was away and now drains: before schema version 11 the claim read and sorted every due row of
the target to find the oldest hundred (store/schema.py). Writes bench/results/backlog.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge.model import Alert, Delivery, Event, Message
from bridge.store.sqlite import SqliteStore

TARGET = "fast"
CLAIM = 100  # rows a digest claims at most (the default digest.max_alerts)
RESULTS = Path(__file__).parent / "results" / "backlog.json"


def delivery(i: int, at: datetime) -> Delivery:
    labels = {"alertname": f"Backlog{i}", "instance": f"node-{i % 50}:9100", "severity": "warning"}
    notes = {"summary": f"alert {i} of a storm", "description": "x" * 200}
    alert = Alert("firing", labels, notes, at, None, "http://prometheus:9090/graph", f"fp{i:08d}")
    payload = {
        "receiver": "dingtalk",
        "status": "firing",
        "alerts": [{"status": "firing", "labels": labels, "annotations": notes}],
        "groupLabels": {"alertname": labels["alertname"]},
        "commonLabels": labels,
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{labels["alertname"]}"}}',
    }
    fingerprint = f"fp{i:08d}"
    event = Event("am", "alertmanager", "firing", labels, notes, fingerprint, at, (alert,), payload)
    head = Message("markdown", "", "")
    return Delivery(f"{i:032x}", "all", TARGET, head, fingerprint, at, "firing", event)


def fill(store: SqliteStore, backlog: int, now: float) -> None:
    at = datetime.fromtimestamp(now, UTC)
    for start in range(0, backlog, 1000):
        with store.transaction() as tx:
            batch = [delivery(i, at) for i in range(start, min(start + 1000, backlog))]
            tx.outbox.enqueue(batch, now - backlog + start)


def turn(store: SqliteStore, now: float) -> tuple[float, float, list[str]]:
    """One sender's turn: (ms of the read, ms of the claim's write transaction, ids claimed)."""
    started = time.perf_counter()
    with store.reading() as read:
        read.outbox.due_at(TARGET, now)
        read.outbox.pending_count(TARGET)
    read_ms = 1e3 * (time.perf_counter() - started)
    started = time.perf_counter()
    with store.transaction() as tx:
        rows = tx.outbox.claim(TARGET, "bench", now, now + 60, CLAIM)
    write_ms = 1e3 * (time.perf_counter() - started)
    return read_ms, write_ms, [r.id for r in rows]


def measure(backlog: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-backlog-") as directory:
        store = SqliteStore(Path(directory))
        try:
            now = time.time()
            fill(store, backlog, now)
            reads, writes = [], []
            for _ in range(repeat):
                read_ms, write_ms, ids = turn(store, now)
                reads.append(read_ms)
                writes.append(write_ms)
                with store.transaction() as tx:  # let go: the next turn claims the same rows
                    tx.outbox.release("bench", ids)
        finally:
            store.close()
    return {
        "backlog": backlog,
        "claim_write_ms": round(statistics.median(writes), 2),
        "read_ms": round(statistics.median(reads), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlogs", type=int, nargs="+", default=[1000, 20000, 100000])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    results = []
    for backlog in args.backlogs:
        result = measure(backlog, args.repeat)
        results.append(result)
        print(
            f"backlog {backlog:>7,}: claim of {CLAIM} (write) {result['claim_write_ms']:7.2f} ms,"
            f" the turn's read {result['read_ms']:6.2f} ms (medians of {args.repeat})"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"when": datetime.now(UTC).isoformat(), "host": platform.node(), "results": results},
            indent=2,
        )
        + "\n"
    )
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
