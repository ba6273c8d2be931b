"""Reloading the config while running, as Alertmanager's reloader does: the new config is
loaded, validated and compiled aside; only when all of that worked is it swapped in, and only
the parts it changed (senders of changed targets, changed file inputs) are replaced.

Triggers: SIGHUP, a change to a watched file (app/watch.py), POST /-/reload.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bridge.config.compile import load_config
from bridge.config.model import Config
from bridge.errors import ConfigError
from bridge.inputs.bearer import bearer_refusal
from bridge.logs import REDACTOR, fmt_fields

if TYPE_CHECKING:
    from bridge.app.bridge import Bridge

log = logging.getLogger("bridge")


class Reloader:
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self._lock = threading.Lock()
        self.last_reload: dict[str, Any] | None = None
        # What /-/ready and status say about the config, replaced in one assignment once a
        # reload has finished: a reader never sees the new hash beside the previous result.
        self.status = self._status()

    def reload(self, trigger: str) -> dict[str, Any]:
        """Load the config file again and, if it is valid and different, switch to it.

        Everything fallible happens first (reading, validating, compiling); a failure changes
        nothing that runs. Then one assignment swaps the config (rules, templates, routes,
        targets); senders are replaced only for targets that changed, and only after the old one
        stopped, so a target never has two senders. Queued messages stay in the outbox through
        it all. The listener, the state store and the HTTP session are long-lived: a change to
        `server` (other than its reload token), `state_dir`, `synchronous` or `state` needs a
        restart.
        """
        with self._lock:
            result = self._reload(trigger)
            self.last_reload = {
                **result,
                "at": self.bridge.clock.now().isoformat(timespec="seconds"),
            }
            self.status = self._status()
            self.bridge.after_reload(self.bridge.config)
            return result

    def _status(self) -> dict[str, Any]:
        return {
            "path": str(self.bridge.config.path),
            "hash": self.bridge.config.digest[:12],
            "loaded_at": self.bridge.loaded_at.isoformat(timespec="seconds"),
            "last_reload": self.last_reload,
        }

    def reload_over_http(self, authorization: str) -> tuple[int, dict[str, Any]]:
        """POST /-/reload: 200 reloaded or unchanged, 422 with the problems, 401 without the
        configured token."""
        if bearer_refusal(authorization, self.bridge.config.server.reload_token) is not None:
            return 401, {
                "status": "error",
                "reason": "unauthorized",
                "error": "POST /-/reload needs the reload token",
            }
        result = self.reload("POST /-/reload")
        return (422 if result["result"] == "failed" else 200), result

    def _reload(self, trigger: str) -> dict[str, Any]:
        old = self.bridge.config
        try:
            new = load_config(old.path)
        except ConfigError as exc:
            log.error(
                fmt_fields(
                    "reload failed, old config kept", trigger=trigger, problems=len(exc.problems)
                )
            )
            for problem in exc.problems:
                log.error(f"  {problem.format()}")
            return {
                "result": "failed",
                "trigger": trigger,
                "problems": [p.format() for p in exc.problems],
            }
        if new.digest == old.digest:
            log.info(fmt_fields("reload skipped, nothing changed", trigger=trigger))
            return {"result": "unchanged", "trigger": trigger, "hash": old.digest[:12]}
        kept = []
        # The tokens and the console take effect at once; the listener's settings need a restart.
        if replace(new.server, reload_token=None, console=None) != replace(
            old.server, reload_token=None, console=None
        ):
            kept.append("server")
        if (new.state_dir, new.synchronous) != (old.state_dir, old.synchronous):
            kept.append("state_dir/synchronous")
        if (new.state_url, new.node_id, new.claim_lease) != (
            old.state_url,
            old.node_id,
            old.claim_lease,
        ):
            kept.append("state")
        new = replace(
            new,
            server=replace(
                old.server, reload_token=new.server.reload_token, console=new.server.console
            ),
            state_dir=old.state_dir,
            synchronous=old.synchronous,
            state_url=old.state_url,
            node_id=old.node_id,
            node_id_configured=old.node_id_configured,
            claim_lease=old.claim_lease,
        )
        changed = {n for n, t in new.targets.items() if old.targets.get(n) != t}
        removed = set(old.targets) - set(new.targets)
        sent = self.bridge._sent(new)
        fresh = {n: self.bridge._sender(sent[n]) for n in changed if n in sent}
        REDACTOR.set_secrets([*old.secrets(), *new.secrets()])
        retiring = [self.bridge.senders[n] for n in changed | removed if n in self.bridge.senders]
        # The swap: from here on requests route, match and render with the new config.
        self.bridge.config = new
        self.bridge._routes = {spec.path: spec for spec in new.routed_inputs().values()}
        self.bridge.bodies_received.forget(set(new.inputs))  # a removed input's bodies go
        restarted_inputs = self._swap_tailers(old, new)
        streams_changed = self.bridge.sync_streams(new)
        for sender in retiring:
            sender.stop(self.bridge.config.shutdown_timeout)
        self.bridge.senders = {
            **{n: s for n, s in self.bridge.senders.items() if n not in changed | removed},
            **fresh,
        }
        for sender in fresh.values():
            sender.start()
        self.bridge.loaded_at = self.bridge.clock.now()
        REDACTOR.set_secrets(new.secrets())
        summary = {
            "result": "success",
            "trigger": trigger,
            "hash": new.digest[:12],
            "targets_changed": sorted(changed - set(old.targets))
            + sorted(changed & set(old.targets)),
            "targets_removed": sorted(removed),
            "file_inputs_restarted": restarted_inputs,
            "stream_connections_changed": streams_changed,
            "needs_restart": kept,
        }
        log.info(
            fmt_fields(
                "config reloaded",
                trigger=trigger,
                hash=new.digest[:12],
                rules=len(new.rules),
                inputs=len(new.inputs),
                targets=len(new.targets),
                restarted_senders=",".join(sorted(changed)) or None,
                removed=",".join(sorted(removed)) or None,
                restarted_inputs=",".join(restarted_inputs) or None,
                stream_connections=",".join(streams_changed) or None,
            )
        )
        if kept:
            log.warning(
                fmt_fields("reload kept old settings, restart to apply", settings=",".join(kept))
            )
        return summary

    def _swap_tailers(self, old: Config, new: Config) -> list[str]:
        """Keep every file input whose definition is unchanged (its files, offsets and partial
        lines untouched); stop the others, then start the new and changed ones. A restarted
        input resumes from the offsets it committed."""
        old_files, new_files = self.bridge.file_inputs(old), self.bridge.file_inputs(new)
        changed = sorted(
            n
            for n in set(old_files) | set(new_files)
            if n not in old_files
            or n not in new_files
            or old_files[n].definition != new_files[n].definition
        )
        for name in changed:
            if name in self.bridge.tailers:
                self.bridge.tailers.pop(name).stop(self.bridge.config.shutdown_timeout)
        for name in changed:
            if name in new_files:
                self.bridge.tailers[name] = self.bridge._tailer(new_files[name])
                self.bridge.tailers[name].start()
        return changed
