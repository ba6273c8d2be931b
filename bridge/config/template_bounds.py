"""Time, output and memory bounds for operator templates, enforced inside the Jinja sandbox.

Jinja's sandbox stops a template from reaching Python internals, not from spending the host:
`{% for i in range(100000) %}{% for j in range(100000) %}` runs for hours, `'x' * 10**9` and
`lipsum(10**7)` take gigabytes, and Jinja even folds constant expressions such as
`'x' * 10**9` while compiling, so `check` itself paid for them. Every place where a template can
spend time or make a large value goes through one of the hooks below, which consult the budget
of the render in progress (a thread-local: each sender and HTTP thread renders on its own):

- time: every loop iteration, call, filter, operator and output chunk checks the deadline;
- output: the rendered text is consumed chunk by chunk and counted;
- memory: an operation that can make a value much larger than its inputs (`*`, `**`, `%`, `+`,
  `~`, str.format, center/indent/wordwrap/replace/join/format/tojson/batch/slice, str methods
  like ljust or replace, lipsum) checks the size of its result *before* computing it, and every
  value made is charged to the render's total.

A render that exceeds a bound raises `TemplateLimitError`; render.py then sends the plain
fallback message, logged with reason `template`. Sizes are counted in "units": characters of a
string, and 8 per container item (about the pointer it costs), which bounds memory within a small
factor whatever the mix of strings and lists.
"""

from __future__ import annotations

import re
import string
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from jinja2.utils import Namespace, generate_lorem_ipsum


@dataclass(frozen=True)
class RenderLimits:
    """What one message's render may spend (title, body, url, buttons together)."""

    seconds: float = 1.0  # CPU-bound wall time; a render that needs more is a broken template
    output_bytes: int = 1 << 20  # UTF-8 bytes of rendered text; DingTalk takes 20,000 a message
    value_units: int = 4 << 20  # the largest single value a template may make
    total_units: int = 32 << 20  # all values made during one render, together


DEFAULT_LIMITS = RenderLimits()
MAX_INT_BITS = 1 << 16  # Python refuses to print ints over 4,300 digits (~14,000 bits) anyway
_ITEM = 8  # units per container item


class TemplateLimitError(Exception):
    """A template exceeded a render bound. `what` is "time", "output" or "size"."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__(f"{what} limit: {message}")
        self.what = what


class Budget:
    """The running account of one render."""

    def __init__(self, limits: RenderLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.deadline = clock() + limits.seconds
        self.made = 0
        self.output = 0
        self.ticks = 0

    def tick(self) -> None:
        # The clock is read every 32 steps: each step is bounded in size, so 32 are quick, and
        # reading it at every one would double the cost of an ordinary render.
        self.ticks += 1
        if not self.ticks & 31 and self.clock() > self.deadline:
            raise TemplateLimitError(
                "time", f"template render took longer than {self.limits.seconds:g}s"
            )

    def charge(self, units: int) -> None:
        self.made += units
        if self.made > self.limits.total_units:
            raise TemplateLimitError(
                "size",
                f"template made more than {self.limits.total_units} units of values in one render",
            )
        self.tick()

    def emit(self, chunk: str) -> None:
        self.output += len(chunk) if chunk.isascii() else len(chunk.encode("utf-8", "replace"))
        if self.output > self.limits.output_bytes:
            raise TemplateLimitError(
                "output", f"template output exceeds {self.limits.output_bytes} bytes"
            )
        self.tick()


_local = threading.local()


def active() -> Budget | None:
    budget: Budget | None = getattr(_local, "budget", None)
    return budget


@contextmanager
def render_budget(limits: RenderLimits) -> Iterator[Budget]:
    """The budget of the render in progress: a new one, or the enclosing one (the templates of
    one message share it, and an include or import runs within its parent's)."""
    outer = active()
    if outer is not None:
        yield outer
        return
    budget = Budget(limits)
    _local.budget = budget
    try:
        yield budget
    finally:
        _local.budget = None


def _limits() -> RenderLimits:
    budget = active()
    return budget.limits if budget is not None else DEFAULT_LIMITS


def tick() -> None:
    budget = active()
    if budget is not None:
        budget.tick()


def too_big(what: str, size: int) -> TemplateLimitError:
    return TemplateLimitError(
        "size", f"{what} would make a value of {size} units (limit {_limits().value_units})"
    )


def require(size: int, what: str) -> None:
    """Refuse to make a value of `size` units."""
    if size > 4096 and size > _limits().value_units:  # (no limit is that small: skip the lookup)
        raise too_big(what, size)


def deep_size(value: Any, cap: int | None = None) -> int:
    """About how many units `str(value)` takes, walking containers; stops counting past `cap`
    (so a shared or cyclic structure costs at most `cap` steps to measure)."""
    if isinstance(value, str):
        return len(value) + 2
    cap = _limits().value_units if cap is None else cap
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes | bytearray):
            total += len(item) + 2
        elif isinstance(item, bool) or item is None or isinstance(item, float):
            total += _ITEM
        elif isinstance(item, int):
            total += item.bit_length() // 3 + _ITEM
        elif isinstance(item, Mapping):
            total += _ITEM * len(item)
            if total > cap:  # before pushing its items: a huge container costs one step
                return total
            for k, v in item.items():
                stack.append(k)
                stack.append(v)
        elif isinstance(item, list | tuple | set | frozenset):
            total += _ITEM * len(item)
            if total > cap:
                return total
            stack.extend(item)
        elif isinstance(item, Namespace):
            stack.append(dict(item._Namespace__attrs))
        else:  # generators, datetimes, macros, loop contexts: their text is short
            total += _ITEM
        if total > cap:
            return total
    return total


def shallow_size(value: Any) -> int:
    """The units a freshly made value holds itself (not what its items refer to)."""
    if isinstance(value, str | bytes | bytearray):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() // 3
    if isinstance(value, list | tuple | set | frozenset | dict):
        return _ITEM * len(value)
    return 0


def made(value: Any, what: str) -> Any:
    """Account for a value an operation made; refuse it if it is too large on its own."""
    if type(value) is str and len(value) < 4096:  # the common case, kept cheap
        budget = active()
        if budget is not None:
            budget.charge(len(value))
        return value
    size = shallow_size(value)
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimitError("size", f"{what} made an integer of over {MAX_INT_BITS} bits")
    require(size, what)
    budget = active()
    if budget is not None:
        budget.charge(size)
    return value


# -- operators -------------------------------------------------------------------------------

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")


def _as_width(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def percent_size(fmt: str, args: Any) -> int:
    """An upper estimate of `fmt % args`: the format, each directive's width or precision, and
    each directive printing the largest argument."""
    values = list(args.values()) if isinstance(args, Mapping) else None
    if values is None:
        values = list(args) if isinstance(args, tuple) else [args]
    biggest = max((deep_size(v) for v in values), default=0)
    size = len(fmt)
    star = False
    for match in _PERCENT_SPEC.finditer(fmt):
        for part in (match.group(1), match.group(2)):
            if part == "*":
                star = True
            elif part:
                size += int(part) if len(part) < 12 else 1 << 40
        size += biggest
    if star:
        size += sum(_as_width(v) for v in values)
    return size


def format_size(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """An upper estimate of `fmt.format(*args, **kwargs)` (widths, nested widths, repeats)."""
    values = [*args, *kwargs.values()]
    biggest = max((deep_size(v) for v in values), default=0)
    size = len(fmt)
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return size  # str.format raises the same error
    for _literal, name, spec, _conversion in fields:
        if name is None:
            continue
        size += biggest
        for number in re.findall(r"\d+", spec or ""):
            size += int(number) if len(number) < 12 else 1 << 40
        if spec and "{" in spec:
            size += sum(_as_width(v) for v in values)
    return size


def binop_size(operator: str, left: Any, right: Any) -> int:
    """An upper estimate of the result of `left <operator> right`, computed without it."""
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(times, int) and isinstance(seq, str | bytes):
                return len(seq) * max(times, 0)
            if isinstance(times, int) and isinstance(seq, list | tuple):
                return deep_size(seq) * max(times, 0)
        return 0
    if operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            bits = right * abs(left).bit_length()
            if bits > MAX_INT_BITS:
                raise TemplateLimitError(
                    "size", f"{left} ** {right} would be an integer of about {bits} bits"
                )
        return 0
    if operator == "%" and isinstance(left, str):
        return percent_size(left, right)
    if operator == "+" and isinstance(left, str | list | tuple) and isinstance(right, type(left)):
        return deep_size(left) + deep_size(right)
    return 0


# -- iteration, joining, output ---------------------------------------------------------------


def ticking(iterable: Iterable[Any]) -> Iterator[Any]:
    """A for loop's items, checking the deadline before each."""
    budget = active()
    for item in iterable:
        if budget is not None:
            budget.tick()
        yield item


def joined(parts: Iterable[Any], sep: str = "") -> str:
    """`sep.join(str(p) for p in parts)`, refused before joining if the result is too large."""
    items = list(parts)
    limit = _limits().value_units
    size = len(sep) * max(len(items) - 1, 0)
    for item in items:
        size += len(item) if isinstance(item, str) else deep_size(item, limit)
        if size > limit:
            raise too_big("joining text", size)
    tick()
    return str(
        made(sep.join(item if isinstance(item, str) else str(item) for item in items), "join")
    )


# -- globals ----------------------------------------------------------------------------------

LIPSUM_MAX_WORDS = 100_000


def bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """Jinja's lipsum, refusing to make more than LIPSUM_MAX_WORDS words."""
    if not all(isinstance(x, int) for x in (n, min, max)):
        raise TypeError("lipsum takes integers")
    if n * max > LIPSUM_MAX_WORDS or n < 0 or max < 0 or min < 0:
        raise TemplateLimitError(
            "size", f"lipsum({n}, max={max}) would make over {LIPSUM_MAX_WORDS} words"
        )
    return str(made(generate_lorem_ipsum(n, html, min, max), "lipsum"))


# -- calls of str/bytes/int/list methods ------------------------------------------------------


def _width_arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], name: str) -> int:
    value = args[0] if args else kwargs.get(name, 0)
    return _as_width(value)


def _replace_size(text: str | bytes | bytearray, old: Any, new: Any, count: Any) -> int:
    if not isinstance(old, type(text)) or not isinstance(new, type(text)):
        return len(text)
    hits = text.count(old) if old else len(text) + 1  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(len(new) - len(old), 0)


def method_size(method: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """An upper estimate of what a builtin method of a str, bytes or int returns, for the
    methods that can make much more than they are given; 0 for the others."""
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", "")
    if isinstance(owner, str | bytes | bytearray):
        if name in ("center", "ljust", "rjust", "zfill"):
            return len(owner) + _width_arg(args, kwargs, "width")
        if name == "expandtabs":
            tab = _width_arg(args, kwargs, "tabsize") or 8
            return len(owner) + owner.count("\t" if isinstance(owner, str) else b"\t") * tab  # type: ignore[arg-type]
        if name == "replace":
            old = args[0] if args else kwargs.get("old")
            new = args[1] if len(args) > 1 else kwargs.get("new")
            count = args[2] if len(args) > 2 else kwargs.get("count", -1)
            return _replace_size(owner, old, new, count)
        if name == "join":
            items = args[0] if args else ()
            if isinstance(items, list | tuple | set | frozenset | dict):
                return deep_size(items) + len(owner) * len(items)
            return 0  # an iterator: joined item by item (see call_method)
        if name == "translate":
            table = args[0] if args else None
            widest = (
                max((deep_size(v) for v in table.values()), default=1)
                if isinstance(table, Mapping)
                else 1
            )
            return len(owner) * max(widest, 1)
    if name == "strftime" and args and isinstance(args[0], str):  # datetime, date, time
        return len(args[0]) + args[0].count("%") * 32
    if isinstance(owner, int) and name == "to_bytes":
        return _width_arg(args, kwargs, "length")
    return 0


def grows_container(method: Any) -> Any:
    """The list, dict or set a builtin method may grow in place (append, extend, update...)."""
    owner = getattr(method, "__self__", None)
    return owner if isinstance(owner, list | dict | set) else None


def is_builtin_method(obj: Any) -> bool:
    return isinstance(obj, types.BuiltinMethodType | types.MethodWrapperType)
