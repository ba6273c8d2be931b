"""What a file input reports (the `files` part of /-/ready and `dingtalk-bridge status`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any


@dataclass
class TailStats:
    """Counters since the input started."""

    lines_matched: int = 0
    events: int = 0
    below_threshold: int = 0
    rotations: int = 0
    truncations: int = 0
    refused_batches: int = 0


def input_status(
    started_at: datetime,
    state: str,
    error: str | None,
    files: list[dict[str, Any]],
    lines_cut: int,
    stats: TailStats,
) -> dict[str, Any]:
    return {
        "started_at": started_at.isoformat(timespec="milliseconds"),
        "state": state,
        "error": error,
        "files": files,
        "lines_cut": lines_cut,
        **asdict(stats),
    }
