"""`dingtalk-bridge oncall -c FILE [--at TIME] [SCHEDULE] [--json]`: who is on call now (or at
TIME), until when, and who is next, per schedule of the config's `oncall:` section.

The answer is bridge.alerting.oncall's (the same words as the chat command `oncall`); this module
only reads the command line and prints, as text for people or `--json` for scripts. Exit codes:
0 answered, 1 the config does not load or has no schedules, 2 the question cannot be asked (an
unknown schedule, a time that does not parse).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import datetime
from typing import Any

from bridge.alerting.oncall import Rotation, Shift, describe, now_and_next
from bridge.cli.common import load_or_report
from bridge.clock import SYSTEM_CLOCK, Clock
from bridge.durations import parse_time

USAGE_ERROR = 2


def cmd_oncall(args: argparse.Namespace, clock: Clock = SYSTEM_CLOCK) -> int:
    config = load_or_report(args.config)
    if config is None:
        return 1
    if not config.oncall:
        print(f"{args.config}: no oncall: schedules", file=sys.stderr)
        return 1
    now = clock.time()
    try:
        at = now if args.at is None else parse_time(args.at, config.timezone, now)
    except ValueError as exc:
        print(f"error: --at: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if args.schedule is not None and args.schedule not in config.oncall:
        names = ", ".join(sorted(config.oncall))
        print(f"error: unknown schedule {args.schedule!r}; schedules: {names}", file=sys.stderr)
        return USAGE_ERROR
    chosen = [config.oncall[args.schedule]] if args.schedule else list(config.oncall.values())
    if args.json:
        answer = {
            "at": datetime.fromtimestamp(at, config.timezone).isoformat(),
            "schedules": {rotation.name: _as_json(rotation, at) for rotation in chosen},
        }
        print(json.dumps(answer, ensure_ascii=False, indent=2))
    else:
        print("\n".join(line for rotation in chosen for line in describe(rotation, at)))
    return 0


def _as_json(rotation: Rotation, at: float) -> dict[str, Any]:
    current, following = now_and_next(rotation, at)
    return {
        "timezone": rotation.zone.key,
        "rotation_seconds": rotation.length,
        "now": _shift(current, rotation),
        "next": None if following is None else _shift(following, rotation),
    }


def _shift(shift: Shift, rotation: Rotation) -> dict[str, Any]:
    """A shift for scripts: the people (primary first) and its ends as ISO 8601 in the
    schedule's zone (null: no change within reach)."""

    def stamp(instant: float) -> str | None:
        if not math.isfinite(instant):
            return None
        return datetime.fromtimestamp(instant, rotation.zone).isoformat()

    return {
        "on_call": list(shift.members),
        "primary": shift.members[0],
        "secondaries": list(shift.members[1:]),
        "start": stamp(shift.start),
        "end": stamp(shift.end),
    }


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "oncall",
        help="who is on call now (or at a time) and who is next, per oncall: schedule",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-c", "--config", required=True, help="the YAML config file")
    p.add_argument("schedule", nargs="?", help="only this schedule (default: every one)")
    p.add_argument(
        "--at",
        metavar="TIME",
        help='ask as of this time: 2026-12-03T09:00:00+08:00, "2026-12-03 09:00" (the '
        'config\'s zone), "+2h", "-30m"; default now',
    )
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=cmd_oncall)
