"""How the sender names messages and errors in log lines, outbox columns and /-/ready. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.logs import REDACTOR
from bridge.store.records import Row

ERROR_TEXT_MAX = 500


def error_text(exc: BaseException) -> str:
    """One line naming the error, without secrets, short enough for a log line and a column."""
    text = REDACTOR.scrub(f"{type(exc).__name__}: {exc}")
    return " ".join(text.split())[:ERROR_TEXT_MAX]


def rules_of(batch: Sequence[Row]) -> str:
    """The rule(s) of a message, for its log lines: a digest names every rule it merges."""
    return ",".join(sorted({r.rule for r in batch}))


def ids_of_rows(batch: Sequence[Row]) -> str:
    """The first message's id, and how many more a digest merged ("3f2a…+4")."""
    return ids_of([r.id for r in batch])


def ids_of(ids: Sequence[str]) -> str:
    return ids[0] if len(ids) == 1 else f"{ids[0]}+{len(ids) - 1}"
