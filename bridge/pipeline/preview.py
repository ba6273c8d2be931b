"""What the daemon would do with some events now, for the `render` command: the same decide step,
against the current state read-only (or an empty one when there is none yet).

Nothing is written: the state database, when there is one, is opened read-only, and the ids the
deliveries carry are drawn for the preview only. The messages of what would be queued are
rendered as the sender renders them (render.queued_message), from the event the row would keep.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path

from bridge.alerting.silences import Silence
from bridge.config.model import Config
from bridge.durations import format_time
from bridge.model import Event, Rendered
from bridge.pipeline.decide import IdSource, StateView, decide
from bridge.pipeline.decision import (
    Decision,
    Grouped,
    NotSentAgain,
    Queued,
    RuleOutcome,
    Silenced,
)
from bridge.pipeline.ids import new_id
from bridge.pipeline.render import queued_message
from bridge.pipeline.state import ConnectionView, MemoryView
from bridge.store import silences as silence_store
from bridge.store.statedir import DB_NAME, connect_read_only


@dataclass(frozen=True)
class Preview:
    decision: Decision
    rendered: dict[str, Rendered] = field(default_factory=dict)  # by delivery id
    state_problem: str = ""  # why the state could not be read (then an empty one was used)


def preview(
    config: Config, events: Sequence[Event], now: datetime, make_id: IdSource = new_id
) -> Preview:
    """Decide `events` against the state in config.state_dir as it is now, read-only."""
    problem = ""
    try:
        with read_state(config.state_dir, now.timestamp()) as (view, runtime):
            silences = [*config.silences, *runtime]
            decision = decide(config.rules, silences, events, view, now, make_id)
    except sqlite3.Error as exc:  # not a database, or one this version cannot read
        problem = f"state database {config.state_dir / DB_NAME} cannot be read ({exc})"
        decision = decide(config.rules, config.silences, events, MemoryView(), now, make_id)
    rules = {rule.name: rule for rule in config.rules}
    rendered: dict[str, Rendered] = {}
    for outcome in decision.outcomes():
        if isinstance(outcome, Queued) and outcome.deliveries:
            first = outcome.deliveries[0]  # one message per rule, the same for every target
            message = queued_message(
                rules.get(outcome.rule), outcome.rule, first.message, first.event, now
            )
            rendered.update((d.id, message) for d in outcome.deliveries)
    return Preview(decision, rendered, problem)


@contextmanager
def read_state(directory: Path, now: float) -> Iterator[tuple[StateView, list[Silence]]]:
    """A read-only view of the state in `directory` and its runtime silences still in force;
    an empty state when there is no database yet (the daemon has not run)."""
    path = directory / DB_NAME
    if not path.is_file():
        yield MemoryView(), []
        return
    with closing(connect_read_only(path)) as conn:
        yield ConnectionView(conn), silence_store.load(conn, ended_after=now)


def explain_silenced(event: Event, silenced: Silenced) -> str:
    alert = "" if silenced.fingerprint == event.fingerprint else f" alert {silenced.fingerprint}"
    silence = silenced.silence
    return (
        f"event {event.fingerprint}{alert}: silenced by {silence.id} ({silence.describe()}, "
        f"{silence.source})"
    )


def verdicts(outcome: RuleOutcome, result: Preview, tz: tzinfo) -> list[str]:
    """What the daemon would do for one rule, a line each (a grouping rule: one per group)."""
    rule = f"rule {outcome.rule}"
    if isinstance(outcome, Grouped):
        return [
            f"{rule}: grouped until {format_time(hold.flush_at, tz)} (group {hold.key[:8]}, "
            f"{len(hold.members)} alert{'s' if len(hold.members) != 1 else ''}), then sent with "
            "the alerts the group holds"
            for hold in outcome.holds
        ]
    if isinstance(outcome, NotSentAgain):
        if outcome.acknowledged_by is not None:
            why = f"until it resolves (acknowledged by {outcome.acknowledged_by})"
        elif outcome.until is None:
            why = "nothing new to tell (it was never told as firing)"
        else:
            why = f"until {format_time(outcome.until, tz)} (repeat_interval)"
        return [f"{rule}: not sent again {why}"]
    if not outcome.deliveries:
        return [f"{rule}: all resolved: logged, not sent (send_resolved is off)"]
    targets = ", ".join(d.target for d in outcome.deliveries)
    lines = [f"{rule}: queued ({outcome.reason}) for {targets}"]
    error = result.rendered[outcome.deliveries[0].id].error
    if error:
        lines.append(f"{rule}: template failed ({error}); the fallback below would be sent")
    return lines
