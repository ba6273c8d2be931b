"""On-call rotations: who is on call at a given instant, and when that changes. Pure maths: the
clock is an argument (`at`, seconds since the epoch), the config compiles the `oncall:` section
into `Rotation`s (bridge/config/oncall.py).

Handovers are wall-clock times in the schedule's zone. The k-th handover is the first one plus k
rotation lengths *of local time* (naive datetime arithmetic), turned into an instant only then:
a weekly rotation at Monday 10:00 in America/New_York stays at 10:00 across daylight saving
time (the week that crosses it is an hour shorter or longer), and a daily one steps in calendar
days, not in 86,400-second blocks. Two wall times need a rule:

- a time that does not exist (the hour skipped when clocks spring forward) hands over when the
  gap ends: 02:30 on that night is 03:00 new time, the first instant that exists after it;
- a time that happens twice (the hour repeated when clocks fall back) hands over the first time.

So handover instants never go backwards as wall times go forwards. (A rotation shorter than a
gap, which the config forbids by its 1h minimum, could give a shift of no length: skipped.)

Before the first handover the rotation counts backwards, as if it had always run: the member
before the first is on call during the shift before it. That keeps "constant between two
handovers" true for every instant, and a schedule written with a future first handover still
names someone today.

Overrides (`{start, end, member}`) replace the primary during [start, end) and may cover part of
a shift, a whole one or several; when overrides overlap, the one listed later wins. The
secondaries are the next people in the rotation's order after the rotation's primary, skipping
anyone already named (the override's member, or a repeat in the member list).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bridge.durations import format_time
from bridge.locales import Locale, duration, translate

# A rotation shorter than this is refused by the config: shorter than a daylight saving gap, a
# shift could vanish, and nobody hands over a pager every few minutes.
MIN_ROTATION = 3600.0
MAX_ROTATION = 366 * 86400.0  # a yearly rotation is the longest anyone writes
# The instants the maths works in (years 1000 to 9990): a calendar shows every handover of a
# rotation up to MAX_ROTATION long in between; outside, an instant counts as the nearest end.
_EARLIEST = -30_610_224_000.0
_LATEST = 253_086_768_000.0
# A bound on the boundaries walked looking for the next change (a safety net: a change comes
# within a round of the members once the overrides are past, see next_handover).
_MAX_STEPS = 10_000


@dataclass(frozen=True)
class Override:
    """`member` is on call (as primary) from `start` to `end` (instants, end excluded)."""

    start: float
    end: float
    member: str


@dataclass(frozen=True)
class Rotation:
    """One `oncall:` schedule, compiled: `members` take turns of `length` seconds of wall-clock
    time in `zone`, the first turn (members[0]) beginning at `first_handover` (a naive local
    time in `zone`)."""

    name: str
    members: tuple[str, ...]
    length: float
    first_handover: datetime
    zone: ZoneInfo
    secondaries: int = 0  # how many people after the primary are named too
    overrides: tuple[Override, ...] = ()


@dataclass(frozen=True)
class Shift:
    """Who is on call (primary first) from `start` until `end` (-inf/+inf: no change known
    within reach; see `_REACH`)."""

    members: tuple[str, ...]
    start: float
    end: float


def on_call(rotation: Rotation, at: float) -> tuple[str, ...]:
    """The people on call at `at`: the primary first, then the secondaries."""
    turn = _turn(rotation, at)
    primary = rotation.members[turn % len(rotation.members)]
    for override in reversed(rotation.overrides):  # the later listed wins
        if override.start <= at < override.end:
            primary = override.member
            break
    named = [primary]
    for step in range(1, len(rotation.members)):
        if len(named) > rotation.secondaries:
            break
        member = rotation.members[(turn + step) % len(rotation.members)]
        if member not in named:
            named.append(member)
    return tuple(named)


def lookup(schedules: Mapping[str, Rotation], at: float) -> Callable[[str], tuple[str, ...]]:
    """`on_call` by schedule name at `at`, for what resolves `oncall:<name>` references. An
    unknown name raises KeyError: the resolver reports it as a name nobody has."""

    def named(name: str) -> tuple[str, ...]:
        return on_call(schedules[name], at)

    return named


def next_handover(rotation: Rotation, at: float) -> float:
    """The first instant after `at` at which `on_call` answers differently (+inf when none: a
    rotation of one person without overrides, or a time past what a calendar shows)."""
    now = on_call(rotation, at)
    last_override = max((o.end for o in rotation.overrides), default=-math.inf)
    moment, quiet_turns = at, 0
    for _ in range(_MAX_STEPS):
        moment = _next_boundary(rotation, moment)
        if math.isinf(moment) or on_call(rotation, moment) != now:
            return moment
        quiet_turns += moment >= last_override
        if quiet_turns > len(rotation.members):  # a full round without a change: none comes
            break
    return math.inf


def last_handover(rotation: Rotation, at: float) -> float:
    """The instant at or before `at` since which `on_call` has answered as at `at` (-inf when
    it always has, as far as can be seen)."""
    now = on_call(rotation, at)
    first_override = min((o.start for o in rotation.overrides), default=math.inf)
    moment, quiet_turns = at, 0
    for _ in range(_MAX_STEPS):
        boundary = _boundary_at_or_before(rotation, moment)
        if math.isinf(boundary):
            return boundary
        moment = math.nextafter(boundary, -math.inf)
        if on_call(rotation, moment) != now:
            return boundary
        quiet_turns += boundary <= first_override
        if quiet_turns > len(rotation.members):
            break
    return -math.inf


def shift_at(rotation: Rotation, at: float) -> Shift:
    """The shift `at` falls in: who, since when, until when."""
    return Shift(on_call(rotation, at), last_handover(rotation, at), next_handover(rotation, at))


def now_and_next(rotation: Rotation, at: float) -> tuple[Shift, Shift | None]:
    """The shift at `at` and the one after it (None when nothing changes within reach)."""
    current = shift_at(rotation, at)
    if math.isinf(current.end):
        return current, None
    return current, Shift(
        on_call(rotation, current.end), current.end, next_handover(rotation, current.end)
    )


def describe(rotation: Rotation, at: float, locale: Locale = "en") -> list[str]:
    """Who is on call at `at` and who is next, as lines for people: the answer of the `oncall`
    command (English) and of the chat command (the config's locale); times in the schedule's
    zone."""
    current, following = now_and_next(rotation, at)
    every = duration(locale, rotation.length)
    lines = [
        translate(
            locale,
            "%(name)s (%(zone)s, turns of %(every)s):",
            name=rotation.name,
            zone=rotation.zone.key,
            every=every,
        )
    ]
    now = translate(locale, "  now: %(who)s", who=people(current.members, locale))
    if math.isfinite(current.start):
        now += translate(locale, " since %(time)s", time=_when(current.start, rotation))
    if following is not None:
        now += translate(locale, ", until %(time)s", time=_when(current.end, rotation))
    lines.append(now)
    if following is not None:
        lines.append(translate(locale, "  next: %(who)s", who=people(following.members, locale)))
    return lines


def people(members: tuple[str, ...], locale: Locale = "en") -> str:
    """ "alice (secondary: bob)": the primary, then who else is named."""
    if len(members) < 2:
        return members[0] if members else translate(locale, "nobody")
    others = ", ".join(members[1:])
    if len(members) == 2:
        return translate(locale, "%(who)s (secondary: %(others)s)", who=members[0], others=others)
    return translate(locale, "%(who)s (secondaries: %(others)s)", who=members[0], others=others)


def _when(instant: float, rotation: Rotation) -> str:
    return format_time(instant, rotation.zone, "%a %Y-%m-%d %H:%M")


def handover_instant(rotation: Rotation, turn: int) -> float:
    """When turn number `turn` begins (turn 0 at the first handover; negative: before it);
    -inf/+inf for a wall time before year 1 or after 9999."""
    try:
        wall = rotation.first_handover + timedelta(seconds=turn * rotation.length)
    except OverflowError:
        return math.inf if turn > 0 else -math.inf
    return wall_instant(wall, rotation.zone)


def wall_instant(wall: datetime, zone: ZoneInfo) -> float:
    """The instant of the naive local time `wall` in `zone`: the first of two when the hour
    repeats, the end of the gap when it does not exist (see the module's docstring)."""
    try:
        first = wall.replace(tzinfo=zone, fold=0)
        instant = first.timestamp()
        if datetime.fromtimestamp(instant, zone).replace(tzinfo=None) == wall:
            return instant
        # In a gap: fold=0 reads it with the offset before the gap (an instant after the gap
        # began), fold=1 with the offset after it (an instant before). The gap's end, the moment
        # the offset changes, lies between: found by bisection (whole seconds suffice).
        low = wall.replace(tzinfo=zone, fold=1).timestamp()
        high = instant
        before = datetime.fromtimestamp(low, zone).utcoffset()
        while high - low > 1:
            middle = math.floor((low + high) / 2)
            if datetime.fromtimestamp(middle, zone).utcoffset() == before:
                low = middle
            else:
                high = middle
        return high
    except (OverflowError, ValueError, OSError):
        return math.inf if wall.year > 5000 else -math.inf


def _turn(rotation: Rotation, at: float) -> int:
    """The turn `at` falls in: the last whose handover is at or before `at`."""
    first = handover_instant(rotation, 0)
    if math.isinf(first) or math.isnan(at):
        return 0
    at = min(max(at, _EARLIEST), _LATEST)
    # Elapsed time estimates the turn; wall time and elapsed time differ by the zone's offset
    # changes (hours), so a few steps either way correct it.
    estimate = (at - first) / rotation.length
    turn = math.floor(estimate)
    while handover_instant(rotation, turn) > at:
        turn -= 1
    while handover_instant(rotation, turn + 1) <= at:
        turn += 1
    return turn


def _next_boundary(rotation: Rotation, after: float) -> float:
    """The first instant after `after` at which a turn or an override begins or ends. While an
    override holds and nobody but the primary is named, turns change nothing: only overrides'
    ends count (an override over three weeks of a daily rotation is one step, not 21)."""
    turn = [] if _covered(rotation, after) else [_turn(rotation, after) + 1]
    candidates = [handover_instant(rotation, t) for t in turn]
    for override in rotation.overrides:
        candidates += [t for t in (override.start, override.end) if t > after]
    return min(candidates)


def _boundary_at_or_before(rotation: Rotation, at: float) -> float:
    """The last instant at or before `at` at which a turn or an override begins or ends (turns
    skipped while an override holds, as in _next_boundary)."""
    candidates = [] if _covered(rotation, at) else [handover_instant(rotation, _turn(rotation, at))]
    for override in rotation.overrides:
        candidates += [t for t in (override.start, override.end) if t <= at]
    return max(candidates)


def _covered(rotation: Rotation, at: float) -> bool:
    """Whether an override holds at `at` and decides all there is (no secondaries named)."""
    return rotation.secondaries == 0 and any(o.start <= at < o.end for o in rotation.overrides)
