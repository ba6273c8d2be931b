"""The Overview page: per target its queue, oldest message, robot window and lockout, dead
letters and the work notices awaiting DingTalk's results; per input its state (file inputs:
their files and lag); the configuration's last reload and its problems. The numbers are the
ones /-/ready gives (health.readiness, so a worker of `server.workers` shows the whole group's),
plus the robots' windows read from the store. The page refreshes its <main> every few seconds
(static/console.js)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge.app.console.web import Answer, Request, json_answer
from bridge.config.model import Config
from bridge.errors import StoreError
from bridge.store.records import ACCEPTED, Result

if TYPE_CHECKING:
    from bridge.app.console.app import Console

NOTICES_SHOWN = 3  # per work-notice target: its last notices, with who received each


def overview_data(console: Console) -> dict[str, Any]:
    bridge = console.bridge
    config = bridge.config
    now = console.clock.time()
    ready, details = bridge.readiness()
    windows, awaiting, notices = _store_facts(console, details, now)
    targets = []
    for name, target in config.targets.items():
        queue = details["queues"].get(name, {})
        locked = queue.get("robot_locked_until")
        rate = target.policy.rate
        targets.append(
            {
                "name": name,
                "type": target.type,
                "pending": queue.get("pending", 0),
                "oldest_age": queue.get("oldest_age_seconds"),
                "claimed": queue.get("claimed", 0),
                "running": queue.get("sender_running", False),
                "window_used": windows.get(queue.get("robot", ""), 0),
                "window_limit": rate.messages,
                "window_per": rate.per,
                "locked_until": locked if locked and locked > now else None,
                "failing": queue.get("robot_failing", 0),
                "awaiting_results": awaiting.get(name, 0),
                "notices": notices.get(name, []),
            }
        )
    return {
        "ready": ready,
        "problems": details.get("problems", []),
        "warnings": details.get("warnings", []),
        "dead_letters": details.get("store", {}).get("dead_letters", 0),
        "writable": details.get("store", {}).get("writable", False),
        "targets": targets,
        "inputs": _inputs(config, details),
        "config": details.get("config", {}),
        "escalations": details.get("escalations") or [],
        "at": now,
    }


def _store_facts(
    console: Console, details: dict[str, Any], now: float
) -> tuple[dict[str, int], dict[str, int], dict[str, list[dict[str, Any]]]]:
    """Calls each robot made in its window, work notices awaiting results per target, and the
    per-user results of each work-notice target's last notices (all empty when the store
    cannot be read now: the page says so through /-/ready's problems)."""
    config = console.bridge.config
    per_robot: dict[str, float] = {}
    for name, target in config.targets.items():
        robot = details["queues"].get(name, {}).get("robot")
        if robot:
            per_robot[robot] = max(per_robot.get(robot, 0.0), target.policy.rate.per)
    notices = [n for n, t in config.targets.items() if t.type == "work_notice"]
    try:
        with console.bridge.store.reading() as tx:
            used = {r: len(tx.ratewindows.load(r, now - per)[0]) for r, per in per_robot.items()}
            results = {
                name: [
                    _result(sent.id, sent.title, tx.notices.results(sent.id))
                    for sent in tx.history.recent(
                        target=name, outcome=ACCEPTED, limit=NOTICES_SHOWN
                    )
                ]
                for name in notices
            }
            return used, tx.notices.waiting(), results
    except StoreError:
        return {}, {}, {}


def _result(id_: str, title: str, results: list[Result]) -> dict[str, Any]:
    """One work notice: who received it and who DingTalk refused (none yet while polled)."""
    return {
        "id": id_,
        "title": title,
        "settled": bool(results),
        "received": sorted({u for r in results for u in r.received}),
        "refused": sorted({f"{u} ({code})" for r in results for u, code in r.refused}),
    }


def _inputs(config: Config, details: dict[str, Any]) -> list[dict[str, Any]]:
    files = details.get("files", {})
    streams = details.get("streams", {})
    out = []
    for name, spec in config.inputs.items():
        row: dict[str, Any] = {"name": name, "type": spec.type, "path": getattr(spec, "path", "")}
        stream = getattr(spec, "stream", None)
        if stream is not None:
            state = streams.get(stream.app_key, {})
            row["state"] = state.get("state", "starting")
            row["error"] = state.get("last_error") or ""
            row["via"] = "stream"
        elif name in files:
            status = files[name]
            row["state"] = status.get("state", "")
            row["error"] = status.get("error") or ""
            row["files"] = [
                {
                    "path": f.get("path", ""),
                    "lines_behind": f.get("lines_behind"),
                    "bytes_behind": max(0, f.get("size", 0) - f.get("offset", 0)),
                }
                for f in status.get("files", [])
            ]
        else:
            row["state"] = "running"
            row["error"] = ""
        out.append(row)
    return out


def page(console: Console, req: Request) -> Answer:
    return console.views.page(req, "overview.html", data=overview_data(console), nav="overview")


def api(console: Console, req: Request) -> Answer:
    return json_answer(200, overview_data(console))
