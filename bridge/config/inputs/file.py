"""The `file` kind: log files followed like `tail -F`, lines matching a pattern become events
(the runtime half is bridge/inputs/filetail)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import jinja2

from bridge.config.context import CompileContext, as_dict, as_int, as_list, as_strs, canonical
from bridge.config.inputs.kind import Definition, InputKind
from bridge.config.templating import FILE_LINE_VARIABLES

# A log line's title says what it is: its level, where it came from and the start of the line.
FILE_DEFAULT_TITLE = (
    "[{{ (labels.get('level') or labels.get('severity') or _('MATCH')) | upper }}] {{ input }}: "
    "{{ annotations.line | truncate_bytes(90) }}"
)


@dataclass(frozen=True)
class LinePattern:
    """One `patterns` entry of a file input: a line matching `regex` becomes an event."""

    regex: re.Pattern[str]
    labels: Mapping[str, jinja2.Template] = field(default_factory=dict)
    annotations: Mapping[str, jinja2.Template] = field(default_factory=dict)


@dataclass(frozen=True)
class Multiline:
    start: re.Pattern[str]
    timeout: float = 2.0
    max_lines: int = 500


@dataclass(frozen=True)
class Threshold:
    count: int
    within: float


@dataclass(frozen=True)
class FileInput:
    """A tailed set of log files (see bridge/inputs/filetail)."""

    name: str
    paths: tuple[str, ...]  # absolute globs
    patterns: tuple[LinePattern, ...]
    exclude: tuple[str, ...] = ()
    read_from: Literal["end", "beginning"] = "end"
    labels: Mapping[str, jinja2.Template] = field(default_factory=dict)
    multiline: Multiline | None = None
    threshold: Threshold | None = None
    max_line_bytes: int = 65_536
    poll_interval: float = 1.0
    rotate_wait: float = 5.0
    close_inactive: float = 300.0
    max_open_files: int = 256
    inotify: bool = True  # wake-ups only: polling finds everything without them
    type: Literal["file"] = "file"
    definition: str = field(default="", repr=False)  # as HttpInput.definition

    def secrets(self) -> tuple[str, ...]:
        return ()


def compile_file(ctx: CompileContext, d: Definition) -> FileInput:
    spec, where, env = d.spec, d.where, d.env
    patterns: list[LinePattern] = []
    for i, raw in enumerate(as_list(spec.get("patterns"))):
        item, at = as_dict(raw), (*where, "patterns", i)
        compiled = ctx.regex((*at, "regex"), item.get("regex"))
        if compiled is None:
            continue
        allowed = FILE_LINE_VARIABLES | frozenset(compiled.groupindex)
        patterns.append(
            LinePattern(
                regex=compiled,
                labels=ctx.templates(env, (*at, "labels"), item.get("labels"), allowed),
                annotations=ctx.templates(
                    env, (*at, "annotations"), item.get("annotations"), allowed
                ),
            )
        )
    multiline = None
    if isinstance(ml := spec.get("multiline"), dict):
        start = ctx.regex((*where, "multiline", "start"), ml.get("start"))
        if start is not None:
            max_lines = ml.get("max_lines", 500)
            multiline = Multiline(
                start=start,
                timeout=ctx.duration((*where, "multiline", "timeout"), ml.get("timeout"), 2.0),
                max_lines=max_lines if isinstance(max_lines, int) else 500,
            )
    threshold = None
    if isinstance(th := spec.get("threshold"), dict) and isinstance(th.get("count"), int):
        within = ctx.duration((*where, "threshold", "within"), th.get("within"), 60.0)
        threshold = Threshold(th["count"], within)

    return FileInput(
        name=d.name,
        paths=tuple(ctx.glob_path(p) for p in as_strs(spec.get("paths"))),
        exclude=as_strs(spec.get("exclude")),
        read_from="beginning" if spec.get("read_from") == "beginning" else "end",
        patterns=tuple(patterns),
        # Input-wide labels see only what every line has (group names differ per pattern).
        labels=ctx.templates(env, (*where, "labels"), spec.get("labels"), FILE_LINE_VARIABLES),
        multiline=multiline,
        threshold=threshold,
        max_line_bytes=as_int(spec.get("max_line_bytes", 65_536), 65_536),
        poll_interval=ctx.duration((*where, "poll_interval"), spec.get("poll_interval"), 1.0),
        rotate_wait=ctx.duration((*where, "rotate_wait"), spec.get("rotate_wait"), 5.0),
        close_inactive=ctx.duration((*where, "close_inactive"), spec.get("close_inactive"), 300.0),
        max_open_files=as_int(spec.get("max_open_files", 256), 256),
        inotify=spec.get("inotify") is not False,
        definition=canonical({**spec, "paths": spec.get("paths"), "base": str(ctx.base_dir)}),
    )


FILE = InputKind(
    type="file",
    compile=compile_file,
    routed=False,
    default_title=FILE_DEFAULT_TITLE,
    default_body="file",
)
