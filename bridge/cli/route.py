"""`dingtalk-bridge route`: ask the config what would become of one alert, as `amtool config
routes test` asks Alertmanager's.

The answer is pipeline.explain's (the rules walked in order, then the daemon's decide step
against the state read-only); this module only reads the command line and prints, as text for
people or `--json` for scripts. Exit codes: 0 when at least one target would get a message (now,
or at its group's next flush), 1 when none would, 2 when the question cannot be asked (a bad
config, an unknown input, labels or a time that do not parse). With `--expect`, 0 when exactly
the expected targets would get a message and 1 otherwise, like amtool's `--verify.receivers`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bridge.alerting.labelset import format_label_set, parse_label_set
from bridge.alerting.matchers import Matcher
from bridge.alerting.mentions import pinged
from bridge.alerting.silences import Silence
from bridge.cli.common import load_or_report
from bridge.clock import SYSTEM_CLOCK, Clock
from bridge.config.model import Config
from bridge.durations import format_time, parse_time
from bridge.inputs.registry import KINDS
from bridge.model import Status
from bridge.pipeline.decision import Flush, Grouped, NotSentAgain, Queued, RuleOutcome
from bridge.pipeline.explain import Explanation, RuleStep, explain, hypothetical_event
from bridge.pipeline.preview import verdicts
from bridge.pipeline.rules import Miss
from bridge.store.backend import describe

USAGE_ERROR = 2
_At = Callable[[float | None], str | None]  # a time as the JSON shows it


class _Usage(Exception):
    """The question cannot be asked: said on stderr, exit 2."""


def cmd_route(args: argparse.Namespace, clock: Clock = SYSTEM_CLOCK) -> int:
    config = load_or_report(args.config)
    if config is None:
        return USAGE_ERROR
    try:
        answer = _ask(args, config, clock)
        expected = _targets(args.expect, config) if args.expect is not None else None
    except _Usage as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    recipients = answer.recipients()
    if args.json:
        print(json.dumps(_as_json(answer, config), ensure_ascii=False, indent=2))
    else:
        print("\n".join(_as_text(answer, config)))
    if expected is None:
        return 0 if recipients else 1
    if set(recipients) == expected:
        return 0
    shown = ", ".join(sorted(expected)) or "none"
    print(f"expected {shown}; got {', '.join(recipients) or 'none'}", file=sys.stderr)
    return 1


def _ask(args: argparse.Namespace, config: Config, clock: Clock) -> Explanation:
    spec = config.inputs.get(args.input)
    if spec is None:
        raise _Usage(f"unknown input {args.input!r}; inputs: {', '.join(sorted(config.inputs))}")
    kind = KINDS[spec.type]
    if kind.sample is None:
        raise _Usage(f"input {spec.name} takes {kind.takes}, not alerts")
    labels = _label_set("--labels", args.labels)
    annotations = _label_set("--annotations", args.annotations)
    try:
        stamp = clock.time()
        stamp = stamp if args.at is None else parse_time(args.at, config.timezone, stamp)
        now = datetime.fromtimestamp(stamp, UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise _Usage(f"--at: {exc}") from None
    status: Status = "resolved" if args.status == "resolved" else "firing"
    event = hypothetical_event(
        spec.name, spec.type, labels, annotations, status, now, args.fingerprint
    )
    return explain(config, event, now)


def _label_set(option: str, texts: list[str]) -> dict[str, str]:
    """Every `option` given, merged (a name given twice is a mistake, as within one)."""
    merged: dict[str, str] = {}
    for text in texts:
        try:
            labels = parse_label_set(text)
        except ValueError as exc:
            raise _Usage(f"{option} {text[:60]!r}: {exc}") from None
        twice = sorted(labels.keys() & merged.keys())
        if twice:
            raise _Usage(f'{option}: label "{twice[0]}" is given twice')
        merged.update(labels)
    return merged


def _targets(text: str, config: Config) -> set[str]:
    names = {n.strip() for n in text.split(",") if n.strip()} - {"none"}
    unknown = sorted(names - set(config.targets))
    if unknown:
        raise _Usage(f"--expect: unknown targets {', '.join(unknown)}")
    return names


# Text, for people.


def _as_text(answer: Explanation, config: Config) -> list[str]:
    tz, event = config.timezone, answer.event
    lines = [
        f"alert {format_label_set(event.labels)} {event.status} on input {event.input} "
        f"({event.kind}) at {format_time(answer.now.timestamp(), tz)} {tz}",
        f"identity {event.fingerprint}",
        _state_line(answer, config),
        "",
        "rules, in order:",
    ]
    width = max((len(s.rule.name) for s in answer.steps), default=0)
    lines += [f"  {s.rule.name.ljust(width)}  {_step_text(s)}" for s in answer.steps]
    if not answer.steps:
        lines.append("  (the config has no rules)")
    lines.append("")
    for silenced in answer.silenced:
        lines.append(f"silenced by {_silence_text(silenced.silence, config)}: nothing is sent")
    for step in answer.steps:
        if step.outcome is not None:
            lines += verdicts(
                step.outcome, answer.result, tz, templates=False, people=config.people
            )
    if not any(s.matched for s in answer.steps):
        lines.append("no rule matches: nothing is sent")
    recipients = answer.recipients()
    lines.append(f"targets that get a message: {', '.join(recipients) or 'none'}")
    return lines


def _state_line(answer: Explanation, config: Config) -> str:
    where = describe(config)
    if answer.result.state_problem:
        return f"state: {answer.result.state_problem}: as if it were empty"
    if answer.result.state_empty:
        return (
            f"state: none yet at {where} (the daemon has not run): no runtime silences, "
            "nothing told before"
        )
    return f"state: {where} (read only)"


def _step_text(step: RuleStep) -> str:
    if not step.reached:
        return "not reached"
    if step.miss is not None:
        return f"no match: {_miss_text(step.miss, step)}"
    targets = ", ".join(step.rule.targets)
    walk = "continues" if step.rule.continue_ else "stops here (no continue)"
    return f"matches -> {targets}; {walk}"


def _miss_text(miss: Miss, step: RuleStep) -> str:
    if not isinstance(miss, Matcher):  # another input
        names = sorted(step.rule.inputs or ())
        return f"only for input{'s' if len(names) != 1 else ''} {', '.join(names)}"
    has = "is not set" if step.actual is None else f'is "{step.actual}"'
    return f"{miss} ({miss.name} {has})"


def _silence_text(silence: Silence, config: Config) -> str:
    end = silence.ends_at
    until = "no end" if end == math.inf else f"until {format_time(end, config.timezone)}"
    return f"{silence.id} ({silence.describe()}, {silence.source}, {until})"


# JSON, for scripts: the same answer, every time as RFC 3339 in the configured zone.


def _as_json(answer: Explanation, config: Config) -> dict[str, Any]:
    tz, event = config.timezone, answer.event

    def at(stamp: float | None) -> str | None:
        return None if stamp is None else datetime.fromtimestamp(stamp, tz).isoformat()

    return {
        "alert": {
            "input": event.input,
            "kind": event.kind,
            "status": event.status,
            "labels": dict(event.labels),
            "annotations": dict(event.annotations),
            "fingerprint": event.fingerprint,
        },
        "at": at(answer.now.timestamp()),
        "state": {
            "where": describe(config),
            "empty": answer.result.state_empty,
            "problem": answer.result.state_problem or None,
        },
        "rules": [_step_json(s, answer, at) for s in answer.steps],
        "silenced_by": [
            {
                "id": s.silence.id,
                "matchers": [str(m) for m in s.silence.matchers],
                "source": s.silence.source,
                "ends_at": None if s.silence.ends_at == math.inf else at(s.silence.ends_at),
            }
            for s in answer.silenced
        ],
        "targets": answer.recipients(),
        "pings": _pings_json(answer, config),
    }


def _pings_json(answer: Explanation, config: Config) -> dict[str, list[str]]:
    """Per rule that sends, who its message @-mentions (names, masked mobiles, userids)."""
    out: dict[str, list[str]] = {}
    for step in answer.steps:
        deliveries = answer.result.deliveries(step.outcome) if step.outcome is not None else ()
        if deliveries:
            out[step.rule.name] = pinged(deliveries[0].message.mention, config.people)
    return out


def _step_json(step: RuleStep, answer: Explanation, at: _At) -> dict[str, Any]:
    miss = step.miss
    return {
        "name": step.rule.name,
        "reached": step.reached,
        "matched": step.matched,
        "continue": step.rule.continue_,
        "targets": list(step.rule.targets),
        "miss": None
        if miss is None
        else {
            "input": not isinstance(miss, Matcher),
            "matcher": str(miss) if isinstance(miss, Matcher) else None,
            "actual": step.actual,
        },
        "outcome": None if step.outcome is None else _outcome_json(step.outcome, answer, at),
    }


def _outcome_json(outcome: RuleOutcome, answer: Explanation, at: _At) -> dict[str, Any]:
    if isinstance(outcome, Grouped):
        return {
            "verdict": "grouped",
            "groups": [
                {
                    "key": hold.key,
                    "labels": dict(hold.labels),
                    "flush_at": at(hold.flush_at),
                    "flush": _flush_json(answer.result.flushes.get((hold.rule, hold.key)), at),
                }
                for hold in outcome.holds
            ],
        }
    return _notification_json(outcome, at)


def _flush_json(flush: Flush | None, at: _At) -> dict[str, Any] | None:
    if flush is None or flush.outcome is None:
        return None
    return {"alerts": flush.held, **_notification_json(flush.outcome, at)}


def _notification_json(outcome: Queued | NotSentAgain, at: _At) -> dict[str, Any]:
    if isinstance(outcome, NotSentAgain):
        return {
            "verdict": "not_sent_again",
            "until": at(outcome.until),
            "acknowledged_by": outcome.acknowledged_by,
            "last_told": at(outcome.last_told),
        }
    if not outcome.deliveries:  # everything resolved and the rule sends no resolved messages
        return {"verdict": "logged_not_sent", "reason": str(outcome.reason), "targets": []}
    return {
        "verdict": "queued",
        "reason": str(outcome.reason),
        "targets": [d.target for d in outcome.deliveries],
    }


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "route",
        help="what would become of one alert: the rules it matches, the targets, what stops it",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-c", "--config", required=True, help="the YAML config file")
    p.add_argument("--input", required=True, help="the input the alert arrives on")
    p.add_argument(
        "--labels",
        action="append",
        default=[],
        metavar="SET",
        help="the alert's labels: alertname=X,severity=critical (quote values with commas: "
        'summary="a, b"); may be given again',
    )
    p.add_argument("--annotations", action="append", default=[], metavar="SET", help="as --labels")
    p.add_argument("--status", choices=["firing", "resolved"], default="firing")
    p.add_argument(
        "--at",
        metavar="TIME",
        help='ask as of this time: 2026-12-01T20:00:00+08:00, "2026-12-01 20:00" (the '
        'config\'s zone), "+2h", "-30m"; default now',
    )
    p.add_argument(
        "--fingerprint",
        help="the alert's identity as its input computes it (a webhook's fingerprint template, an "
        "Alertmanager groupKey's hash); default: the label set's",
    )
    p.add_argument(
        "--expect",
        metavar="TARGETS",
        help='exit 0 only if exactly these targets get a message (comma-separated; "none")',
    )
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=cmd_route)
