"""Health: is the bridge alive (the systemd watchdog, /-/healthy) and ready to take alerts
(/-/ready, the `status` chat command), with the reasons in words when it is not."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge.errors import StoreError

if TYPE_CHECKING:
    from bridge.app.bridge import Bridge


MAX_ESCALATIONS_SHOWN = 50  # /-/ready stays small in a storm; /metrics has the count


def healthy(bridge: Bridge) -> bool:
    """Senders and file inputs running (what the systemd watchdog pings vouch for)."""
    return (
        all(s.alive() for s in bridge.senders.values())
        and all(t.alive() for t in bridge.tailers.values())
        and (bridge.notice_poller.alive() or not bridge.sends)
        and bridge.streams.alive()
    )


def local_state(bridge: Bridge) -> dict[str, Any]:
    """What this process alone can say of itself, without asking the store: its senders and
    file inputs, the problems and warnings about them. A worker of `server.workers` writes it
    every second for its siblings (app/siblings.py), so it must stay this cheap."""
    senders = {name: s.alive() for name, s in bridge.senders.items()}
    sending = {name: s.status() for name, s in bridge.senders.items()}
    tailers = {name: t.status() for name, t in bridge.tailers.items()}
    streams = bridge.streams.status()
    # Why not ready, in words, so the answer to a failing probe says what to look at.
    problems = [
        f"the sender of target {name} is not running" for name, up in senders.items() if not up
    ]
    problems += [
        f"target {name} holds a {st['unrecorded']['outcome']} outcome the store could not"
        f" record ({st['unrecorded']['error']}): it sends nothing until the store commits"
        for name, st in sending.items()
        if st["unrecorded"]
    ]
    problems += [
        f"file input {name} is {t['state']}" + (f": {t['error']}" if t["error"] else "")
        for name, t in tailers.items()
        if t["state"] != "running"
    ]
    # Worth a look, but not a reason to turn traffic away: a message that met a bug of ours
    # is a dead letter and its queue moved on. Refusing every input for it (503 makes
    # Alertmanager retry and load balancers drop the instance) would stop the alerts that
    # can still be delivered, and fix nothing: dingtalk_bridge_internal_errors_total is the
    # thing to alert on.
    warnings = [
        f"target {name} dead-lettered {st['internal_errors']} message(s) on an internal"
        f" error, the last {st['last_internal_error']['id']}:"
        f" {st['last_internal_error']['error']}"
        for name, st in sending.items()
        if st["last_internal_error"]
    ]
    # A Stream connection that is not up is a warning: the HTTP inputs and the senders work
    # on, and turning traffic away (503) would not bring it back. Its state and last error (a
    # wrong app secret says so) are under "streams".
    warnings += [
        f"stream connection of app {key} is {st['state']}"
        + (f": {st['last_error']}" if st["last_error"] else "")
        for key, st in streams.items()
        if st["state"] != "connected"
    ]
    return {
        "problems": problems,
        "warnings": warnings,
        "senders": senders,
        "sending": sending,
        "files": tailers,
        "streams": streams,
    }


def readiness(bridge: Bridge) -> tuple[bool, dict[str, Any]]:
    now = bridge.clock.time()
    probe = bridge.store.probe(now)
    depths, dead, writable = probe.depths, probe.dead_letters, probe.writable
    local = local_state(bridge)
    senders, sending, tailers = local["senders"], local["sending"], local["files"]
    problems = ([] if writable else ["the state store cannot take commits"]) + local["problems"]
    warnings = local["warnings"]
    return not problems, {
        "problems": problems,
        "warnings": warnings,
        "config": bridge.reloader.status,
        "node": bridge.node_id,  # the file inputs' offsets are this node's (state.node_id)
        "store": {"writable": writable, "dead_letters": int(dead), "wakeups": probe.wakeups},
        # This process's id in the claims it makes on shared rows (delivery/claims.py).
        "replica": bridge.replica,
        "queues": {
            name: {
                "pending": depths.get(name, (0, None))[0],
                "oldest_age_seconds": round(now - oldest, 1)
                if (oldest := depths.get(name, (0, None))[1]) is not None
                else None,
                "claimed": probe.claimed.get(name, 0),  # by any replica, being sent now
                # None: another process sends (server.background_worker), whose snapshot
                # fills it in (app/siblings.py group_readiness).
                "sender_running": senders.get(name),
                **sending.get(name, {}),
            }
            for name in bridge.config.targets
        },
        "files": tailers,
        "streams": local["streams"],
        "escalations": _escalations(bridge, now),
    }


def _escalations(bridge: Bridge, now: float) -> list[dict[str, Any]] | None:
    """The escalations running (pipeline/escalator.py): each alert, its rule, the steps sent and
    when the next falls due. None when the store cannot be read now (the store says so above)."""
    try:
        with bridge.store.reading() as tx:
            running = tx.escalations.running()
    except StoreError:
        return None
    rules = bridge.config.rules_by_name
    out: list[dict[str, Any]] = []
    for one in running[:MAX_ESCALATIONS_SHOWN]:
        steps = rule.escalate if (rule := rules.get(one.rule)) is not None else ()
        next_at = (
            one.started_at + steps[one.steps_done].after if one.steps_done < len(steps) else None
        )
        out.append(
            {
                "rule": one.rule,
                "alert": one.fingerprint[:8],
                "steps_sent": one.steps_done,
                "steps": len(steps),
                "unacknowledged_seconds": round(now - one.started_at, 1),
                "next_step_in_seconds": round(next_at - now, 1) if next_at is not None else None,
            }
        )
    return out
