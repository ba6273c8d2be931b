"""The floor under bench.saturate: what the Python stack itself allows on this host.

    python -m bench.floor [--duration 10] [--clients 8] [--processes 1 2]

bench.saturate's clients (bench/ingest.py: processes with one keep-alive connection each, lean
by default, posting the same distinct Alertmanager notifications) against programs that do only
part of the daemon's work, on the daemon's own HTTP server (app/httpserver.py, each request on
the I/O loop's thread, as the daemon serves alerts posted to its inputs), so the distance between
them and the daemon is what the bridge's own work costs:

- `http`: the server answers 200 at once (the body read, nothing else);
- `commit`: the body parsed (orjson) and written as one row, committed before the 200, in a
  SQLite file set up as the store's (WAL, synchronous=NORMAL), one connection per process;
- `forward`: `commit`, plus a thread that claims up to 50 rows at a time in its own write
  transaction, decodes them and deletes them: a sender without DingTalk.

With `--processes 2` two such processes share the listening socket (as `server.workers` does)
and the SQLite file, taking the store's writer lock (store/writerlock.py) around each write.
Reported per mode and process count: accepted requests/s and the server processes' CPU per
request. Writes bench/results/floor.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.ingest import (
    ClientJob,
    add_client_option,
    cpu_seconds,
    notification_template,
    run_clients,
)
from bridge.app.httpserver import HttpServer, Limits
from bridge.store.writerlock import WriterLock
from tests.harness import ROOT

RESULTS = ROOT / "bench" / "results" / "floor.json"
MODES = ("http", "commit", "forward")
CLAIM = 50  # rows a forwarder takes at a time
THREADS = 4  # application threads, as the daemon's default server.threads (idle here)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class Store:
    """One process's connection to the shared file, writes serialized as the daemon's are: a
    thread lock in the process, the writer flock across processes."""

    def __init__(self, directory: Path) -> None:
        self.conn = sqlite3.connect(
            directory / "floor.db", isolation_level=None, check_same_thread=False, timeout=5
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.lock = threading.Lock()
        self.writer = WriterLock(directory / "floor.db-writer")

    def write(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        with self.lock:
            self.writer.acquire(5.0)
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(self.conn)
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
                self.conn.execute("COMMIT")
                return result
            finally:
                self.writer.release()


def make_app(mode: str, store: Store | None) -> Callable[[dict[str, Any], StartResponse], Any]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        body = environ["wsgi.input"].read()
        answer = b'{"status":"accepted"}'
        if store is not None:
            doc = orjson.loads(body)
            row = orjson.dumps(doc)
            store.write(lambda conn: conn.execute("INSERT INTO outbox(body) VALUES (?)", (row,)))
            answer = orjson.dumps({"status": "accepted", "alerts": len(doc["alerts"])})
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
        )
        return [answer]

    return app


def forwarder(store: Store) -> None:
    def claim(conn: sqlite3.Connection) -> int:
        rows = conn.execute("SELECT id, body FROM outbox ORDER BY id LIMIT ?", (CLAIM,)).fetchall()
        for _, body in rows:
            orjson.loads(body)
        if rows:
            conn.execute("DELETE FROM outbox WHERE id <= ?", (rows[-1][0],))
        return len(rows)

    while True:
        if not store.write(claim):
            time.sleep(0.005)


def serve(mode: str, listener: socket.socket, directory: Path) -> None:
    """One server process (never returns: killed by the driver)."""
    store = Store(directory) if mode != "http" else None
    if store is not None and mode == "forward":
        threading.Thread(target=forwarder, args=(store,), daemon=True).start()
    limits = Limits(connection_limit=1000, idle_timeout=60.0, max_body_bytes=1 << 20)
    app = make_app(mode, store)
    HttpServer(app, [listener], limits, threads=THREADS, inline=_on_the_loop).run()


def _on_the_loop(environ: dict[str, Any]) -> bool:
    """Every request runs on the server's loop thread, as the daemon serves its inputs."""
    return True


def one_run(
    mode: str, processes: int, clients: int, duration: float, lean: bool = True
) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    with sqlite3.connect(directory / "floor.db") as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE outbox(id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    pids = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                serve(mode, listener, directory)
            finally:
                os._exit(0)
        pids.append(pid)
    listener.close()
    time.sleep(0.5)  # the servers listen (the socket queues connections meanwhile)
    try:
        body = notification_template()
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        jobs = [ClientJob(i, port, body, duration, 0.0, False, lean=lean) for i in range(clients)]
        results = run_clients(jobs)
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    accepted = sum(r.statuses.get(200, 0) for r in results)
    elapsed = max(r.finished for r in results) - min(r.started for r in results)
    return {
        "mode": mode,
        "processes": processes,
        "clients": clients,
        "accepted_per_s": round(accepted / elapsed, 1),
        "non_200": sum(n for r in results for s, n in r.statuses.items() if s != 200),
        "cpu_ms_per_request": round(1000 * cpu / max(accepted, 1), 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    add_client_option(parser)
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results ({RESULTS})")
    args = parser.parse_args(argv)
    runs = []
    for processes in args.processes:
        for mode in args.modes:
            run = one_run(mode, processes, args.clients, args.duration, args.client == "lean")
            runs.append(run)
            print(
                f"{mode:>8}, {processes} process(es), {args.clients} clients: "
                f"{run['accepted_per_s']:7.0f} accepted/s, non-200 {run['non_200']}, "
                f"{run['cpu_ms_per_request']:.3f} ms CPU/request",
                flush=True,
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "benchmark": "floor",
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "runs": runs,
            },
            indent=2,
        )
    )
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
