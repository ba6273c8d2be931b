"""The `oncall:` section: schedules compiled into `Rotation`s (the maths is in
bridge/alerting/oncall.py).

Times in a schedule (`handover`, an override's `start` and `end`) are local times in the
schedule's zone ("2026-11-30 10:00"), or carry their own offset ("2026-11-30T10:00+08:00"). The
first handover is kept as a local wall time, since every later one is that wall time plus whole
rotations; an override is an interval of instants. Members are people's names: any non-empty
name is accepted here (whether each is in the `people:` directory is checked where the two meet).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bridge.alerting.oncall import MAX_ROTATION, MIN_ROTATION, Override, Rotation, wall_instant
from bridge.config.context import CompileContext, as_dict, as_list
from bridge.config.sections import compile_timezone
from bridge.config.yamlsource import PathKey
from bridge.durations import format_duration

_YEARS = (1970, 9000)
_TIME_HINT = 'e.g. "2026-11-30 10:00" (in the schedule\'s zone) or "2026-11-30T10:00:00+08:00"'


def compile_oncall(ctx: CompileContext, spec: Any, default_zone: ZoneInfo) -> dict[str, Rotation]:
    """Every schedule that compiles (the problems of the others are in `ctx`)."""
    out: dict[str, Rotation] = {}
    for name, raw in as_dict(spec).items():
        rotation = _schedule(ctx, str(name), as_dict(raw), default_zone)
        if rotation is not None:
            out[str(name)] = rotation
    return out


def _schedule(
    ctx: CompileContext, name: str, spec: dict[str, Any], default_zone: ZoneInfo
) -> Rotation | None:
    where: PathKey = ("oncall", name)
    zone = (
        default_zone
        if spec.get("timezone") is None
        else compile_timezone(ctx, spec["timezone"], (*where, "timezone"))
    )
    members = _members(ctx, where, spec.get("members"))
    length = _rotation_length(ctx, (*where, "rotation"), spec.get("rotation"))
    first = _first_handover(ctx, (*where, "handover"), spec.get("handover"), zone)
    secondaries = _secondaries(ctx, (*where, "secondary"), spec.get("secondary"), members)
    overrides = tuple(
        override
        for index, raw in enumerate(as_list(spec.get("overrides")))
        if (override := _override(ctx, (*where, "overrides", index), as_dict(raw), zone))
    )
    if not members or length is None or first is None:
        return None
    return Rotation(name, members, length, first, zone, secondaries, overrides)


def _members(ctx: CompileContext, where: PathKey, raw: Any) -> tuple[str, ...]:
    names = []
    for index, member in enumerate(as_list(raw)):
        if not isinstance(member, str):
            continue  # the schema says "must be a string"
        if not member.strip():
            ctx.problem((*where, "members", index), "a name must not be blank", "e.g. alice")
            continue
        names.append(member.strip())
    return tuple(names)


def _rotation_length(ctx: CompileContext, at: PathKey, raw: Any) -> float | None:
    if raw is None:
        return None  # the schema says it is required
    length = ctx.duration(at, raw, 0.0, maximum=MAX_ROTATION)
    if 0 < length < MIN_ROTATION:
        ctx.problem(at, f"a rotation is at least {format_duration(MIN_ROTATION)}", 'e.g. "1w"')
    return length if length >= MIN_ROTATION else None


def _secondaries(ctx: CompileContext, at: PathKey, raw: Any, members: tuple[str, ...]) -> int:
    """`secondary: true` names the next person too; `secondary: N` the next N."""
    count = 1 if raw is True else raw if isinstance(raw, int) and raw is not False else 0
    others = len(set(members)) - 1
    if members and count > others:
        ctx.problem(
            at,
            f"{count} secondar{'y' if count == 1 else 'ies'} need at least {count + 1}"
            f" different people in members ({others + 1} listed)",
        )
        return others
    return count


def _first_handover(ctx: CompileContext, at: PathKey, raw: Any, zone: ZoneInfo) -> datetime | None:
    """The first handover as a local wall time in `zone` (a time with an offset, converted)."""
    when = _time(ctx, at, raw)
    if when is None or when.tzinfo is None:
        return when
    return when.astimezone(zone).replace(tzinfo=None)


def _override(
    ctx: CompileContext, where: PathKey, spec: dict[str, Any], zone: ZoneInfo
) -> Override | None:
    span = []
    for key in ("start", "end"):
        when = _time(ctx, (*where, key), spec.get(key))
        if when is not None:
            span.append(wall_instant(when, zone) if when.tzinfo is None else when.timestamp())
    member = spec.get("member")
    if isinstance(member, str) and not member.strip():
        ctx.problem((*where, "member"), "a name must not be blank", "e.g. alice")
        return None
    if len(span) != 2 or not isinstance(member, str):
        return None
    if span[1] <= span[0]:
        ctx.problem((*where, "end"), "the override ends before it starts", "end is after start")
        return None
    return Override(span[0], span[1], member.strip())


def _time(ctx: CompileContext, at: PathKey, raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None  # absent or not a string: the schema says so
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        ctx.problem(at, f'"{shown}" is not a date and time', _TIME_HINT)
        return None
    if not _YEARS[0] <= when.year <= _YEARS[1]:  # (and the maths stays within the calendar)
        ctx.problem(at, f"the year must be between {_YEARS[0]} and {_YEARS[1]}", _TIME_HINT)
        return None
    return when
